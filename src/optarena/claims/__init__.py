"""The seeds' claims, tested through the arena: ``optarena claims [NAME ...] [--quick] --out DIR``.

Each claim (:mod:`optarena.claims.studies`) runs its study into its own store, draws its
figure in the paper's form and gives a verdict by a test stated in its docstring.
"""

from optarena.claims.base import VERDICTS, Claim, ClaimResult, Verdict, claims_page, run_claim
from optarena.claims.studies import CLAIMS

__all__ = ["CLAIMS", "VERDICTS", "Claim", "ClaimResult", "Verdict", "claims_page", "run_claim"]
