"""The plan: which candidates fit a device profile, in the order to try them, and which tried one ships.

Pure: no torch and no training. `plan(profile, num_items, priors, cfg)` ranks; the recipe
(toolkit/recipe/student.py) trains, compresses and exports each `Plan.next_trial()` on the graph that
ships and hands back what it measured (`Plan.record`); `Plan.choose()` picks.

1. Enumerate candidates (toolkit/planning/candidates.py: dim, blocks, heads, item-table rank,
   table/linear bits); a profile with `int8 = false` only gets fp32 candidates.
2. Estimate each for every format the profile serves (toolkit/planning/estimate.py) and keep those that
   fit every budget with `margin` to spare.
3. Order the fitting ones by their expected validation quality (`toolkit.training.priors`: proxy
   students measured on this build's own validation data): candidates within `quality_tolerance` of the
   best prior first, smallest first. One is tried (two when the budget binds quality); a trial whose
   measured file misses the budget, or whose compression lost more than `QUALITY_MARGIN` of its float
   student's validation NDCG, makes the plan step down to the next.
4. The winner is the smallest fitting file whose validation NDCG@10 is within `quality_tolerance` of the
   best tried, relative (2 %: at NDCG@10 0.015 a smaller student may give up 0.0003, at 0.10 0.002).
   Every candidate considered is recorded (config, predicted and measured bytes, predicted
   memory/latency, validation NDCG@10). When nothing fits, `DoesNotFitError` names the closest
   candidate and how far it misses each budget.

The profiler (toolkit/profiler/run.py) then measures memory and latency of the chosen artifacts in the
real runtimes; the estimates here only choose what to train.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from toolkit.core.errors import DoesNotFitError
from toolkit.planning.candidates import Candidate, PlanConfig, enumerate_candidates
from toolkit.planning.estimate import Estimate, describe, estimate, misses, scaled, weight_bytes

# the profiler's quality check (toolkit/profiler/judge.py): an artifact's NDCG@K may be at most this far below
# its float model's (relative); the plan applies it on validation, so it never ships a student that
# compression broke (a 50,000-item build shipped a table rank 8 that lost 27 % and failed it)
QUALITY_MARGIN = 0.05


@dataclass
class CandidateRecord:
    candidate: dict
    predicted: dict  # Estimate.to_dict()
    fits_predicted: bool
    misses: dict  # budget -> relative excess (predicted, or measured bytes once measured)
    prior_ndcg10: float = 0.0  # expected valid NDCG@10 (toolkit.training.priors, this build's data): orders the trials
    tried: bool = False
    measured_bytes: dict = field(default_factory=dict)  # format -> bytes of the exported file
    valid_ndcg10: float | None = None  # of the compressed model
    float_valid_ndcg10: float | None = None  # of the distilled float student, before compression
    fits_measured: bool | None = None
    keeps_quality: bool | None = None  # compressed valid NDCG within QUALITY_MARGIN of the float student's
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ExportOptions:
    """How to export the planned model: the weights are already quantized inside it, so every
    format is written with the plain path (`export_executorch(..., calibration=None)`,
    `export_onnx(..., int8=False)`); `precision` is the label for the manifest."""

    precision: str
    table_bits: int
    linear_bits: int

    def to_dict(self) -> dict:
        return asdict(self)


def prior_ndcg(c: Candidate, priors) -> float:
    """Expected valid NDCG@10 of a candidate from the build's measured priors (toolkit.training.priors); a
    second block gets no credit (measured: no gain on MovieLens; it is tried when the first misses)."""
    return priors.predict(c.dim, c.table_bits, c.linear_bits, factorized=bool(c.embedding_rank),
                          pq=bool(c.pq_subspaces), two_stage=c.two_stage)


def within_tolerance(best: float, tolerance: float) -> float:
    """The lowest NDCG@10 that counts as keeping `best`'s quality: `tolerance` is relative."""
    return best * (1 - tolerance)



def rank_candidates(profile, num_items: int, priors, cfg: PlanConfig | None = None
                    ) -> tuple[list[CandidateRecord], list[tuple[Candidate, Estimate, CandidateRecord]], dict[str, str]]:
    """Estimate every candidate; return all records, the fitting ones in trial order (no training),
    and the requested formats no candidate can fit (format -> why).

    A format fits when some candidate fits every budget in it; the candidates tried must fit every
    format that can fit (a 25 KB profile asking for both formats gets its .onnx, and the .pte, whose
    program alone is ~31 KB, is reported as not fitting instead of nothing being built).

    Raises:
        DoesNotFitError: no candidate fits any format by estimate; names the closest and its misses.
    """
    cfg = cfg or PlanConfig()
    max_history, formats, int8 = profile.serving.max_history, profile.serving.formats, profile.hardware.int8
    candidates = enumerate_candidates(cfg, int8, num_items)
    estimates = [estimate(c, num_items, max_history, profile.hardware.gflops, formats) for c in candidates]
    margin = [scaled(e, 1 + cfg.margin) for e in estimates]
    fits_in = {f: [not any(misses(m, profile, formats=(f,)).values()) for m in margin] for f in formats}
    possible = tuple(f for f in formats if any(fits_in[f]))
    unfit = {}
    for f in formats:
        if f not in possible:
            c, e = min(zip(candidates, estimates), key=lambda ce: max(misses(ce[1], profile, formats=(f,)).values()))
            unfit[f] = f"no student fits {f}; closest is {c.name()}, which misses {describe(misses(e, profile, formats=(f,)))} (estimates)"
    records: list[CandidateRecord] = []
    fitting: list[tuple[Candidate, Estimate, CandidateRecord]] = []
    for i, (c, est) in enumerate(zip(candidates, estimates)):
        ok = bool(possible) and all(fits_in[f][i] for f in possible)
        rec = CandidateRecord(candidate=c.to_dict(), predicted=est.to_dict(), fits_predicted=ok,
                              misses=misses(est, profile, formats=possible or formats), prior_ndcg10=prior_ndcg(c, priors))
        records.append(rec)
        if ok:
            fitting.append((c, est, rec))
    if not fitting:
        closest_c, closest = min(zip(candidates, records), key=lambda cr: max(cr[1].misses.values()))
        raise DoesNotFitError(f"profile {profile.name}: no student fits; closest is {closest_c.name()}, "
                              f"which misses {describe(closest.misses)} (estimates)")
    # the smallest student expected to keep the best quality: candidates whose prior is within
    # `quality_tolerance` (relative) of the best go first, smallest first; the rest follow by prior
    floor = within_tolerance(max(r.prior_ndcg10 for _, _, r in fitting), cfg.quality_tolerance)
    fitting.sort(key=lambda x: (x[2].prior_ndcg10 < floor,
                                weight_bytes(x[0], num_items, max_history) if x[2].prior_ndcg10 >= floor
                                else -x[2].prior_ndcg10))
    return records, fitting, unfit


@dataclass
class Trial:
    """One fitting candidate in trial order, with its estimate and the record the plan reports."""

    candidate: Candidate
    estimate: Estimate
    record: CandidateRecord


@dataclass
class Plan:
    """The ranked trials for one profile and what was measured of those tried."""

    profile: object  # toolkit.core.profiles.DeviceProfile
    num_items: int
    trials: list[Trial]  # the fitting candidates, in trial order
    records: list[CandidateRecord]  # every candidate considered (the tried ones first, in the order tried)
    unfit: dict[str, str]  # requested formats nothing fits -> why
    max_trials: int  # trials wanted (more only to step down)
    binding: bool  # the budget binds quality: the best fitting prior is below the best overall
    config: PlanConfig
    priors: dict  # toolkit.training.priors.QualityPriors.to_dict()
    tried: list[Trial] = field(default_factory=list)

    @property
    def formats(self) -> tuple[str, ...]:
        """The requested formats that can fit: the ones built."""
        return tuple(f for f in self.profile.serving.formats if f not in self.unfit)

    def next_trial(self) -> Trial | None:
        """The next candidate to train, or None when the plan has what it needs (a trial that fits and
        kept its quality, after `max_trials`) or has tried `max_candidates`."""
        n = len(self.tried)
        done = any(t.record.fits_measured and t.record.keeps_quality for t in self.tried) and n >= self.max_trials
        if done or n >= min(len(self.trials), self.config.max_candidates):
            return None
        return self.trials[n]

    def record(self, trial: Trial, measured_bytes: dict[str, int], valid_ndcg10: float, float_valid_ndcg10: float,
               seconds: float) -> CandidateRecord:
        """What a trial measured: its shipped files' bytes, its validation NDCG@10 (compressed and float)."""
        rec = trial.record
        rec.tried, rec.float_valid_ndcg10, rec.valid_ndcg10 = True, float_valid_ndcg10, valid_ndcg10
        rec.measured_bytes = dict(measured_bytes)
        rec.misses = misses(trial.estimate, self.profile, rec.measured_bytes, self.formats)
        # compression must keep the float student's quality as the profiler will require (validation here)
        rec.keeps_quality = valid_ndcg10 >= float_valid_ndcg10 * (1 - QUALITY_MARGIN)
        rec.fits_measured = not any(rec.misses.values())
        rec.seconds = seconds
        self.tried.append(trial)
        self.records.remove(rec)
        self.records.insert(len(self.tried) - 1, rec)  # tried candidates first, in the order tried
        return rec

    def choose(self) -> Trial:
        """Of the tried trials that fit (and kept their quality through compression, when any did), the
        smallest file whose validation NDCG@10 is within `quality_tolerance` of the best.

        Raises:
            DoesNotFitError: no tried trial fits; names the closest and its misses (measured file size).
        """
        fits = [t for t in self.tried if t.record.fits_measured]
        if not fits:
            closest = min(self.tried, key=lambda t: max(t.record.misses.values()))
            raise DoesNotFitError(f"profile {self.profile.name}: no tried student fits; closest is "
                                  f"{closest.candidate.name()}, which misses {describe(closest.record.misses)} "
                                  "(measured file size)")
        fits = [t for t in fits if t.record.keeps_quality] or fits  # (all that fit when none did: the profiler says it)
        floor = within_tolerance(max(t.record.valid_ndcg10 for t in fits), self.config.quality_tolerance)
        return min((t for t in fits if t.record.valid_ndcg10 >= floor), key=lambda t: max(t.record.measured_bytes.values()))

    def to_dict(self, chosen: Trial, steps: list, teacher_valid_ndcg10: float | None) -> dict:
        """The manifest's `plan` (report.md and report.json read it): the choice and every candidate."""
        c = chosen.candidate
        options = ExportOptions(precision=c.precision, table_bits=c.table_bits, linear_bits=c.linear_bits)
        return {"candidate": c.to_dict(), "export": {fmt: options.to_dict() for fmt in self.formats},
                "candidates": [r.to_dict() for r in self.records], "steps": [s.to_dict() for s in steps],
                "teacher_valid_ndcg10": teacher_valid_ndcg10, "priors": self.priors,
                "unfit_formats": self.unfit, "quality_tolerance": self.config.quality_tolerance}


def plan(profile, num_items: int, priors, cfg: PlanConfig | None = None, log=None) -> Plan:
    """The trials for `profile` (see the module docstring), ranked by estimate and the measured priors.

    Raises:
        DoesNotFitError: no candidate fits any format by estimate.
    """
    cfg = cfg or PlanConfig()
    log = log or (lambda *_: None)
    records, fitting, unfit = rank_candidates(profile, num_items, priors, cfg)
    result = Plan(profile=profile, num_items=num_items, trials=[Trial(c, e, r) for c, e, r in fitting],
                  records=records, unfit=unfit, max_trials=cfg.max_trials, binding=False, config=cfg,
                  priors=priors.to_dict())
    for why in unfit.values():
        log(f"plan: {why}: only {', '.join(result.formats)} will be built (the build then does not fit, exit 1)")
    # a budget that binds quality is worth a second trained candidate (the priors are coarse there)
    result.binding = max(r.prior_ndcg10 for _, _, r in fitting) < within_tolerance(
        max(r.prior_ndcg10 for r in records), cfg.quality_tolerance)
    result.max_trials = cfg.max_trials_binding if result.binding else cfg.max_trials
    log(f"plan: {len(fitting)} of {len(records)} candidates fit {profile.name} by estimate; "
        f"trying up to {result.max_trials}{' (the budget binds)' if result.binding else ''}")
    return result
