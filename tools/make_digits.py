"""Write src/optarena/data/digits.npz from scikit-learn's bundled copy of the digits data.

The data are the 1,797 8x8 handwritten digits of the UCI "Optical Recognition of
Handwritten Digits" set (Alpaydin & Kaynak, CC BY 4.0) as scikit-learn ships them. Storing
them as a small compressed array keeps scikit-learn out of optarena's core install; the
test suite checks the stored copy against scikit-learn's.

    python tools/make_digits.py
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

OUT = Path(__file__).resolve().parents[1] / "src" / "optarena" / "data" / "digits.npz"


def main() -> None:
    digits = load_digits()
    images = digits.data.astype(np.uint8).reshape(-1, 8, 8)
    assert (images == digits.data.reshape(-1, 8, 8)).all()
    np.savez_compressed(OUT, images=images, labels=digits.target.astype(np.uint8))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(images)} images)")


if __name__ == "__main__":
    main()
