"""ListMLE and ListNet losses, transcribed from allRank.

Repository: allegro/allRank, files allrank/models/losses/listMLE.py and
allrank/models/losses/listNet.py, commit f9b66d4a2ded068ba8a8ba00388bdd14638e301e, functions
listMLE and listNet. Deviations: DEFAULT_EPS (1e-10, allrank/models/losses/__init__.py) and
PADDED_Y_VALUE (-1, allrank/data/dataset_loading.py) are written as the defaults' values.
listMLE shuffles the list before its (unstable) sort, so ties among the labels are broken at
random, as upstream.
"""

import torch
import torch.nn.functional as F

DEFAULT_EPS = 1e-10
PADDED_Y_VALUE = -1


def listMLE(y_pred, y_true, eps=DEFAULT_EPS, padded_value_indicator=PADDED_Y_VALUE):
    """
    ListMLE loss introduced in "Listwise Approach to Learning to Rank - Theory and Algorithm".
    :param y_pred: predictions from the model, shape [batch_size, listing_length]
    :param y_true: ground truth labels, shape [batch_size, listing_length]
    :param eps: epsilon value
    :param padded_value_indicator: an indicator of the y_true index containing a padded item,
        e.g. -1
    :return: loss value
    """
    # shuffle for randomised tie resolution
    random_indices = torch.randperm(y_pred.shape[-1])
    y_pred_shuffled = y_pred[:, random_indices]
    y_true_shuffled = y_true[:, random_indices]

    y_true_sorted, indices = y_true_shuffled.sort(descending=True, dim=-1)

    mask = y_true_sorted == padded_value_indicator

    preds_sorted_by_true = torch.gather(y_pred_shuffled, dim=1, index=indices)
    preds_sorted_by_true[mask] = float("-inf")

    max_pred_values, _ = preds_sorted_by_true.max(dim=1, keepdim=True)

    preds_sorted_by_true_minus_max = preds_sorted_by_true - max_pred_values

    cumsums = torch.cumsum(preds_sorted_by_true_minus_max.exp().flip(dims=[1]), dim=1).flip(
        dims=[1]
    )

    observation_loss = torch.log(cumsums + eps) - preds_sorted_by_true_minus_max

    observation_loss[mask] = 0.0

    return torch.mean(torch.sum(observation_loss, dim=1))


def listNet(y_pred, y_true, eps=DEFAULT_EPS, padded_value_indicator=PADDED_Y_VALUE):
    """
    ListNet loss introduced in "Learning to Rank: From Pairwise Approach to Listwise Approach".
    :param y_pred: predictions from the model, shape [batch_size, listing_length]
    :param y_true: ground truth labels, shape [batch_size, listing_length]
    :param eps: epsilon value
    :param padded_value_indicator: an indicator of the y_true index containing a padded item,
        e.g. -1
    :return: loss value
    """
    y_pred = y_pred.clone()
    y_true = y_true.clone()

    mask = y_true == padded_value_indicator
    y_pred[mask] = float("-inf")
    y_true[mask] = float("-inf")

    preds_smax = F.softmax(y_pred, dim=1)
    true_smax = F.softmax(y_true, dim=1)

    preds_smax = preds_smax + eps
    preds_log = torch.log(preds_smax)

    return torch.mean(-torch.sum(true_smax * preds_log, dim=1))
