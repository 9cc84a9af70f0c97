"""Train a segmentation model on Oxford-IIIT Pet: the same as `tfseg train`.

    python train_pet.py --model mobilenet_unet --alpha 0.5 --loss ce+dice
    python train_pet.py --model unet --synthetic 64 --batch-size 8 --image-size 64
    python train_pet.py --resume runs/20261126-081500_mobilenet_unet

`tfseg train --help` (or `python train_pet.py --help`) lists every flag.
"""

import sys

from tfseg.cli import main


def train_main(argv=None):
    return main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(train_main())
