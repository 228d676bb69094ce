"""The power the gate states for itself (``GateDecision.power``) is what the whole gate does: superiority *and*
per-slice non-inferiority, on seeded binormal pairs with a real AUC gain (``benchmarks.gate_calibration``).

Unequal slices (shares 0.5 / 0.3 / 0.2) at prevalence 0.15, 8,000 rows, AUC 0.80 -> 0.82, so that neither rule
is near 0 or 1 power: the mean predicted whole-gate power must match the measured promotion rate within 3
Monte-Carlo standard errors plus 0.05 (the product of the two rules' powers under-states their joint pass rate
a little: they are positively correlated), and must not exceed it by more than 3 standard errors; the
superiority rule's prediction must match its own pass rate within 3 standard errors plus 0.03.

    uv run --frozen pytest tests/statistical/test_gate_power.py -m slow -s -q   # ~30-50 s on a loaded 2-core box
"""

from __future__ import annotations

import math

import numpy as np

from benchmarks.gate_calibration import simulate_pair
from tasks.core.settings import GateSettings
from tasks.gate.evaluate import evaluate_gate


def test_the_stated_power_is_the_whole_gates() -> None:
    rng = np.random.default_rng(20_261_206)
    pairs, rows, effect = 250, 8_000, 0.02
    settings = GateSettings(n_bootstrap=100, target_effect=effect)
    promoted = superior = 0
    predicted, predicted_superiority = [], []
    for pair in range(pairs):
        labels, candidate, champion, _ = simulate_pair(rng, rows, 0.8, effect, 0.5, 0.15)
        segment = rng.choice(np.array(["a", "b", "c"]), size=rows, p=[0.5, 0.3, 0.2])
        decision = evaluate_gate(labels, candidate, champion, {"segment": segment}, settings, seed=pair)
        assert decision.power is not None and decision.power.slices_judged == 3
        promoted += decision.passed
        superior += decision.rule("superiority").verdict == "pass"  # type: ignore[union-attr]
        predicted.append(decision.power.power)
        predicted_superiority.append(decision.power.superiority)
    measured, stated = promoted / pairs, float(np.mean(predicted))
    error = math.sqrt(max(measured * (1 - measured), 0.01) / pairs)
    print(f"\nwhole gate: promotes {measured:.3f} +- {error:.3f}, predicted {stated:.3f}")
    assert 0.1 < stated < 0.9, "the case is meant to sit between the extremes"
    assert abs(measured - stated) <= 3 * error + 0.05
    assert stated <= measured + 3 * error
    alone, stated_alone = superior / pairs, float(np.mean(predicted_superiority))
    error_alone = math.sqrt(max(alone * (1 - alone), 0.01) / pairs)
    print(f"superiority alone: passes {alone:.3f} +- {error_alone:.3f}, predicted {stated_alone:.3f}")
    assert abs(alone - stated_alone) <= 3 * error_alone + 0.03
