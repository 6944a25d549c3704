"""`python -m keras_miamix`: the `keras-miamix` command."""

import sys

from keras_miamix.training.cli import main

sys.exit(main())
