"""Cauchy-Schwarz retrieval loss, transcribed from the official code.

Repository: JiahaoZhang666/CSD, file code/utils/metric.py, commit
caf18cac60a5d8f6fc7d4fc1753ad0aea74778bf: gcs_divergence, and from class Loss the methods
compute_similarity_matrix, create_target_matrix and the loss part of compute_cmcl_loss (the
recall@k bookkeeping is dropped). Deviations: functions instead of an nn.Module; no .cuda().
"""

import torch
import torch.nn.functional as F


def gcs_divergence(pred_1, pred_2, pred_3, target, epsilon=1e-8):
    pred_1 = torch.clamp(pred_1, min=epsilon)
    pred_2 = torch.clamp(pred_2, min=epsilon)
    pred_3 = torch.clamp(pred_3, min=epsilon)
    target = torch.clamp(target, min=epsilon)
    numerator = torch.sum(pred_1 * pred_2 * pred_3 * target, dim=1)
    denominator = (
        (torch.sum(pred_1**4, dim=1) ** (1 / 4))
        * (torch.sum(pred_2**4, dim=1) ** (1 / 4))
        * (torch.sum(pred_3**4, dim=1) ** (1 / 4))
        * (torch.sum(target**4, dim=1) ** (1 / 4))
    )
    cs_loss = -torch.log(numerator / denominator)
    return torch.mean(cs_loss)


def compute_similarity_matrix(query_feats, key_feats, temperature=0.05, epsilon=1e-8):
    query_norm = F.normalize(query_feats, p=2, dim=1)
    key_norm = F.normalize(key_feats, p=2, dim=1)
    sim_matrix = torch.mm(query_norm, key_norm.transpose(0, 1))
    sim_matrix = torch.exp(sim_matrix / temperature)
    row_sums = sim_matrix.sum(dim=1, keepdim=True)
    return sim_matrix / (row_sums + epsilon)


def create_target_matrix(labels):
    return (labels.unsqueeze(0) == labels.unsqueeze(1)).float()


def cmcl_loss(image_embeddings, text_embeddings, audio_embeddings, labels, tau=0.1):
    image_norm = F.normalize(image_embeddings, dim=1)
    text_norm = F.normalize(text_embeddings, dim=1)
    audio_norm = F.normalize(audio_embeddings, dim=1)
    S_target = create_target_matrix(labels).to(image_embeddings.dtype)
    S_t2a = compute_similarity_matrix(text_norm, audio_norm, tau)
    S_a2t = compute_similarity_matrix(audio_norm, text_norm, tau)
    S_t2i = compute_similarity_matrix(text_norm, image_norm, tau)
    S_i2t = compute_similarity_matrix(image_norm, text_norm, tau)
    S_a2i = compute_similarity_matrix(audio_norm, image_norm, tau)
    S_i2a = compute_similarity_matrix(image_norm, audio_norm, tau)
    return gcs_divergence(S_t2a, S_t2i, S_a2i, S_target) + gcs_divergence(
        S_a2t, S_i2t, S_i2a, S_target
    )
