import sys

from lossdsl.cli import main

sys.exit(main())
