"""Is the AlgoPerf ranking stable? Score tables of two independent races and their rank correlation.

Give two stores, each holding an AlgoPerf race of the same workloads and optimizers run with
different ``--seed`` (so no study shares a seed). Prints each benchmark score table (by steps
and by seconds) and Spearman's rho and Kendall's tau between the two runs' scores.

    python benchmarks/algoperf_stability.py A.sqlite B.sqlite
"""

from __future__ import annotations

import argparse

from optarena.arena.algoperf_scoring import load_algoperf, rank_correlation, score_table
from optarena.arena.store import Store


def _tables(db: str, ruleset: str) -> dict:
    with Store(db, readonly=True) as store:
        results = load_algoperf(store, ruleset)
    return {measure: score_table(results, measure, ruleset) for measure in ("steps", "seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--ruleset", default="external")
    args = parser.parse_args()
    runs = {db: _tables(db, args.ruleset) for db in (args.first, args.second)}
    for measure in ("steps", "seconds"):
        print(f"\nby {measure}")
        for db, tables in runs.items():
            table = tables[measure]
            print(
                f"  {db}: "
                + "; ".join(
                    f"{r.rank}. {r.optimizer} {r.score.value:.3f} [{r.score.low:.2f}, {r.score.high:.2f}]"
                    for r in table.rows
                )
            )
            for r in table.rows:
                cells = ", ".join(f"{w} {t.value:.4g} ({r.reached[w]})" for w, t in r.times.items())
                print(f"      {r.optimizer}: {cells}")
        a, b = (runs[db][measure].scores() for db in (args.first, args.second))
        rho, tau = rank_correlation(a, b)
        print(f"  rank correlation between the runs: Spearman {rho:.3f}, Kendall {tau:.3f}")


if __name__ == "__main__":
    main()
