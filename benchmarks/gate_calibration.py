"""Calibration of driftgate's promotion gate against the naive rule "promote if the candidate's metric is higher".

    uv run python benchmarks/gate_calibration.py            # >= 1,000 null pairs of 50k rows (~15-20 min)
    uv run python benchmarks/gate_calibration.py --quick    # reduced (10k rows, 400 null pairs), < 2 minutes

Each candidate/champion pair is simulated directly as scores on the same holdout rows, from a binormal
model: a row is positive with probability ``--prevalence``; each model's score is ``mu * label + noise``
with unit-variance normal noise, the two models' noises correlated ``--rho`` (two models of the same data
rank rows alike). A model's ROC AUC is then Phi(mu / sqrt 2); the champion's is ``--auc`` and the
candidate's is ``--auc + effect``. Null pairs have effect 0: the candidate is no better, so every
promotion is a false one. Each pair also carries a random 4-valued slice column, so the gate runs with
its per-slice non-inferiority rule, as it does in production.

Printed side by side, for each effect: driftgate's promotion rate (the false-promotion rate at effect 0,
the power otherwise) and the naive rule's. On the null pairs also: driftgate with accuracy as the primary
criterion (McNemar's exact test), at the Bayes decision threshold of the scores. Monte-Carlo error
of a rate r over N pairs: sqrt(r (1 - r) / N).

The gate runs exactly as shipped (``tasks.gate.evaluate.evaluate_gate``) with ``gate.n_bootstrap=100`` (the
bootstrap interval is reported, never decisive, so fewer resamples change no decision and save time).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from tasks.core.settings import GateSettings
from tasks.gate.evaluate import evaluate_gate


@dataclass(frozen=True)
class Row:
    effect: float
    pairs: int
    driftgate: float
    naive: float
    accuracy_gate: float | None
    seconds: float
    # Mean over pairs of the power the gate predicts for itself at this effect (tasks.gate.power, from each
    # pair's DeLong standard errors: the whole gate's, superiority x slices); None at effect 0, where power is the
    # false-promotion rate.
    predicted: float | None = None
    superiority: float = 0.0  # share of pairs whose superiority test passes (the rule alone)
    predicted_superiority: float | None = None  # mean predicted power of the superiority test alone
    inconclusive: float = 0.0  # share of pairs whose gate failed as inconclusive (underpowered)
    predicted_sd: float = 0.0  # spread over pairs of the predictions (their mean's MC error: sd / sqrt(pairs))
    predicted_superiority_sd: float = 0.0


def simulate_pair(
    rng: np.random.Generator, rows: int, auc: float, effect: float, rho: float, prevalence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(labels, candidate scores, champion scores, slice values) of one binormal pair."""
    labels = (rng.random(rows) < prevalence).astype(np.int8)
    mu_champion = math.sqrt(2.0) * float(norm.ppf(auc))
    mu_candidate = math.sqrt(2.0) * float(norm.ppf(auc + effect))
    shared = rng.normal(size=rows)
    own = rng.normal(size=rows)
    candidate = mu_candidate * labels + shared
    champion = mu_champion * labels + rho * shared + math.sqrt(1.0 - rho * rho) * own
    segment = rng.integers(0, 4, size=rows).astype(str)
    return labels, candidate, champion, segment


def promotion_rates(
    *,
    pairs: int,
    rows: int,
    effect: float,
    seed: int,
    auc: float = 0.8,
    rho: float = 0.5,
    prevalence: float = 0.3,
    alpha: float = 0.05,
    with_accuracy: bool = False,
) -> Row:
    """Promotion rates of driftgate's gate and of the naive rule over ``pairs`` simulated pairs."""
    # The gate states its power at target_effect: set to the simulated effect, its prediction is comparable.
    settings = GateSettings(alpha=alpha, n_bootstrap=100, min_effect=0.0, target_effect=effect or 0.01)
    accuracy_settings = settings.model_copy(update={"metric": "accuracy"})
    # Bayes threshold of the champion's binormal scores: a score above it is more likely positive. Scores
    # are mapped through Phi(score - threshold) so that the gate's 0.5 threshold is this one.
    mu_champion = math.sqrt(2.0) * float(norm.ppf(auc))
    threshold = mu_champion / 2.0 + math.log((1.0 - prevalence) / prevalence) / mu_champion
    rng = np.random.default_rng(seed)
    gate_hits = naive_hits = accuracy_hits = superiority_hits = inconclusive_hits = 0
    predicted: list[float] = []
    predicted_superiority: list[float] = []
    started = time.perf_counter()
    for pair in range(pairs):
        labels, candidate, champion, segment = simulate_pair(rng, rows, auc, effect, rho, prevalence)
        decision = evaluate_gate(labels, candidate, champion, {"segment": segment}, settings, seed=pair)
        gate_hits += decision.passed
        superiority = decision.rule("superiority")
        superiority_hits += superiority is not None and superiority.verdict == "pass"
        inconclusive_hits += decision.inconclusive
        predicted.append(decision.power.power if decision.power is not None else math.nan)
        predicted_superiority.append(decision.power.superiority if decision.power is not None else math.nan)
        naive_hits += (decision.candidate_auc or 0.0) > (decision.champion_auc or 0.0)
        if with_accuracy:
            accuracy = evaluate_gate(
                labels,
                norm.cdf(candidate - threshold),
                norm.cdf(champion - threshold),
                {"segment": segment},
                accuracy_settings,
                seed=pair,
            )
            accuracy_hits += accuracy.passed
    return Row(
        effect=effect,
        pairs=pairs,
        driftgate=gate_hits / pairs,
        naive=naive_hits / pairs,
        accuracy_gate=accuracy_hits / pairs if with_accuracy else None,
        seconds=time.perf_counter() - started,
        predicted=float(np.mean(predicted)) if effect > 0 else None,
        superiority=superiority_hits / pairs,
        predicted_superiority=float(np.mean(predicted_superiority)) if effect > 0 else None,
        inconclusive=inconclusive_hits / pairs,
        predicted_sd=float(np.std(predicted)),
        predicted_superiority_sd=float(np.std(predicted_superiority)),
    )


def mc_error(rate: float, pairs: int) -> float:
    return math.sqrt(max(rate * (1.0 - rate), 1e-12) / pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced run (< 2 minutes)")
    parser.add_argument("--null-pairs", type=int, default=None)
    parser.add_argument("--pairs", type=int, default=None, help="pairs per non-zero effect")
    parser.add_argument("--rows", type=int, default=None, help="holdout rows per pair")
    parser.add_argument("--rho", type=float, default=0.5)
    parser.add_argument("--auc", type=float, default=0.8)
    parser.add_argument("--prevalence", type=float, default=0.3)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = args.rows or (10_000 if args.quick else 50_000)
    null_pairs = args.null_pairs or (400 if args.quick else 1000)
    pairs = args.pairs or (100 if args.quick else 250)
    effects = (0.01, 0.02) if args.quick else (0.0025, 0.005, 0.01, 0.02)
    common = {"rows": rows, "auc": args.auc, "rho": args.rho, "prevalence": args.prevalence, "alpha": args.alpha}

    print(
        f"gate calibration: {rows} holdout rows per pair, champion AUC {args.auc}, score correlation {args.rho}, "
        f"prevalence {args.prevalence}, alpha {args.alpha}, seed {args.seed}{' (quick)' if args.quick else ''}"
    )
    null = promotion_rates(pairs=null_pairs, effect=0.0, seed=args.seed, with_accuracy=True, **common)
    bound = args.alpha + 2.0 * mc_error(args.alpha, null.pairs)
    print(
        f"FALSE-PROMOTION RATE over {null.pairs} null pairs: driftgate {null.driftgate:.3f} "
        f"(+-{mc_error(null.driftgate, null.pairs):.3f}), driftgate with accuracy primary (McNemar) "
        f"{null.accuracy_gate:.3f}, naive 'promote if higher' {null.naive:.3f}; target <= alpha + 2 MC s.e. = "
        f"{bound:.3f}: {'met' if null.driftgate <= bound else 'NOT met'}  [{null.seconds:.0f} s]",
        flush=True,
    )
    results = [null]
    for index, effect in enumerate(effects, start=1):
        row = promotion_rates(pairs=pairs, effect=effect, seed=args.seed + 1000 * index, **common)
        results.append(row)
        print(
            f"power at AUC gain {effect:g} over {row.pairs} pairs: driftgate {row.driftgate:.3f} "
            f"(+-{mc_error(row.driftgate, row.pairs):.3f}), naive {row.naive:.3f}  [{row.seconds:.0f} s]",
            flush=True,
        )
    print()
    print("| AUC gain | pairs | driftgate promotes | naive promotes | driftgate / naive |")
    print("|---|---|---|---|---|")
    for row in results:
        ratio = row.driftgate / row.naive if row.naive else math.nan
        label = "0 (null: false promotions)" if row.effect == 0 else f"{row.effect:g}"
        print(f"| {label} | {row.pairs} | {row.driftgate:.3f} | {row.naive:.3f} | {ratio:.2f} |")
    at_target = next((r for r in results if math.isclose(r.effect, 0.01)), None)
    if at_target is not None:
        verdict = "met" if at_target.driftgate >= 0.8 else "NOT met"
        scope = "" if rows >= 50_000 else " (the target is set for 50k rows; this run uses fewer)"
        print(
            f"\npower at AUC gain 0.01 with {rows} rows: {at_target.driftgate:.3f} (target >= 0.80: {verdict}){scope}"
        )


if __name__ == "__main__":
    main()
