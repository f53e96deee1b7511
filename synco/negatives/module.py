"""``SyntheticNegatives``: selection + the six SynCo strategies behind one object.

Usable from any training loop::

    gen = SyntheticNegatives()                        # the paper's defaults
    logits = gen.logits(query, queue, generator=g)    # (B, S), gradient into query only
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from synco.negatives import synthesize
from synco.negatives.dot_logits import synthetic_logits_from_dots
from synco.negatives.select import check_num_hard, mask_logits, select_hardest

#: Strategy ids in the order the synthetic negatives are laid out along S.
STRATEGIES = ("interpolate", "extrapolate", "mixup", "noise", "perturb", "adversarial")
#: The constructor's (and the config's) count argument of each strategy, in the same order.
COUNT_KEYS = tuple(f"num_{name}" for name in STRATEGIES)
#: How :meth:`SyntheticNegatives.logits` computes ``q.s``: from dot products (fast) or vectors.
LOGITS_PATHS = ("dots", "vectors")


@dataclass(frozen=True)
class SyntheticSample:
    """Synthetic negatives of one batch.

    Attributes:
        vectors: (B, S, D) unit-norm, detached.
        strategy: (S,) int64 strategy id, 1..6 in the order of :data:`STRATEGIES`.
        index: (B, S, 2) int64 queue rows used; column 1 is mixup's second source, else -1.
        coef: (B, S) the drawn alpha (type 1), beta (type 2) or gamma (type 3); 0 for types 4-6.
    """

    vectors: torch.Tensor
    strategy: torch.Tensor
    index: torch.Tensor
    coef: torch.Tensor


@dataclass  # not frozen: Lightning's output handling rebuilds dataclasses field by field
class SyntheticSources:
    """Where a batch's synthetic negatives came from.

    Attributes:
        hardest: (B, N) the queue rows selected as the N hardest.
        index: (B, S, 2) queue rows each synthetic negative was built from (column 1: mixup's second, else -1).
        strategy: (S,) strategy id 1..6 of each synthetic negative.
    """

    hardest: torch.Tensor
    index: torch.Tensor
    strategy: torch.Tensor


@dataclass(frozen=True)
class SynthesisDraws:
    """Every random number of one batch's synthesis, drawn before (and apart from) the selection.

    The draws do not depend on which queue rows are the hardest: sources are drawn as *positions*
    within the N hardest (0 = hardest), turned into queue rows by :func:`rows_of_positions` once the
    selection is known. So the draws can run eagerly while the rest of the path is compiled, and a
    compiled path gets the same negatives as the eager one for the same generator state.

    Attributes:
        first: per strategy (B, n_t) int64 positions of the source negative within the N hardest.
        second: (B, n_3) int64 positions of mixup's second source.
        coef: per strategy (B, n_t) alpha (type 1), beta (type 2), gamma (type 3); zeros for types 4-6.
        noise: (B, n_4, D) the Gaussian noise of type 4, already scaled by sigma.
    """

    first: list[torch.Tensor]
    second: torch.Tensor
    coef: list[torch.Tensor]
    noise: torch.Tensor


@dataclass(frozen=True)
class _Draws:
    """One call's selection and draws with positions turned into queue rows (what the paths read)."""

    hard: torch.Tensor  # (B, N) queue rows of the N hardest negatives, hardest first
    first: list[torch.Tensor]  # per strategy: (B, n_t) queue rows of the source negative
    second: torch.Tensor  # (B, n_3) queue rows of mixup's second source
    coef: list[torch.Tensor]  # per strategy: (B, n_t) coefficient (zeros for types 4-6)
    noise: torch.Tensor  # (B, n_4, D) Gaussian noise of type 4, already scaled by sigma


def rows_of_positions(hard: torch.Tensor, draws: SynthesisDraws) -> _Draws:
    """Queue rows of the drawn positions: ``rows = gather(hard, 1, positions)``, per strategy."""
    first = [torch.gather(hard, 1, pos) for pos in draws.first]  # per strategy (B, n_t)
    second = torch.gather(hard, 1, draws.second)  # (B, n_3)
    return _Draws(hard=hard, first=first, second=second, coef=draws.coef, noise=draws.noise)


def synthetic_logits_of_draws(query, queue, queue_logits, hard, first, second, coef, noise, extrapolation: str,
                              delta: float, eta: float) -> torch.Tensor:
    """:func:`synthetic_logits_from_dots` from drawn *positions* (a :class:`SynthesisDraws`' tensors) within the
    N hardest ``hard`` (B, N): the part of the negatives path that ``torch.compile`` takes whole (no random draws,
    no data-dependent shapes). Returns (B, S), gradient into ``query`` only."""
    rows = rows_of_positions(hard, SynthesisDraws(first=first, second=second, coef=coef, noise=noise))
    return synthetic_logits_from_dots(query, queue, queue_logits, rows.first, rows.second, rows.coef, rows.noise,
                                      extrapolation, delta, eta)


class SyntheticNegatives(torch.nn.Module):
    """Synthetic hard negatives of SynCo (section 4.1), defaults as in section 5.1.

    For each query the N hardest queue negatives (largest ``q.n``) are selected; each synthetic
    negative draws its source(s) uniformly, with replacement, from those N (as the reference code
    does with ``randint``). Synthetic vectors are L2-normalised, detached and never enqueued.

    Args:
        num_hard: N, hardest queue negatives to draw sources from.
        num_interpolate, num_extrapolate, num_mixup, num_noise, num_perturb, num_adversarial:
            N1..N6, synthetic negatives per query of each strategy (0 turns a strategy off).
        alpha_max: upper bound of alpha ~ U(0, alpha_max) (type 1).
        beta_max: upper bound of beta ~ U(1, beta_max) (type 2).
        sigma: standard deviation of the Gaussian noise (type 4).
        delta: step along the similarity gradient (type 5).
        eta: step along the sign of the similarity gradient (type 6).
        extrapolation: ``"paper"`` for Eq. 5, ``s = n + beta (n - q)``; ``"reference"`` for the
            authors' code, ``s = q + beta (n - q)``.
        logits_path: ``"dots"`` (default) computes :meth:`logits` from dot products without
            (B, S, D) tensors (``dot_logits.py``); ``"vectors"`` builds the vectors with
            :meth:`sample` and multiplies. Both give the same negatives for the same generator state.

    Random draws, all from ``generator``, in this fixed order (so that any faster path can reproduce
    the same negatives): for each strategy t = 1..6 in turn, source positions
    ``randint(N, (B, N_t))`` within the N hardest; then for mixup the second positions
    ``randint(N, (B, N_3))``; then the coefficient ``rand(B, N_t)`` scaled to its range (types 1-3);
    for noise ``randn(B, N_4, D)`` times sigma. Precisely: positions 1, alpha; positions 2, beta;
    positions 3, second positions 3, gamma; positions 4, noise; positions 5; positions 6.

    Raises:
        ValueError: naming the argument, for negative counts, out-of-range coefficients,
            ``num_hard = 0`` with synthesis asked for, or an unknown ``extrapolation``.
    """

    def __init__(
        self,
        num_hard: int = 1024,
        num_interpolate: int = 256,
        num_extrapolate: int = 256,
        num_mixup: int = 256,
        num_noise: int = 64,
        num_perturb: int = 64,
        num_adversarial: int = 64,
        alpha_max: float = 0.5,
        beta_max: float = 1.5,
        sigma: float = 0.01,
        delta: float = 0.01,
        eta: float = 0.01,
        extrapolation: str = "paper",
        logits_path: str = "dots",
    ) -> None:
        super().__init__()
        counts = {
            "num_hard": num_hard,
            "num_interpolate": num_interpolate,
            "num_extrapolate": num_extrapolate,
            "num_mixup": num_mixup,
            "num_noise": num_noise,
            "num_perturb": num_perturb,
            "num_adversarial": num_adversarial,
        }
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if not 0 < alpha_max <= 1:
            raise ValueError(f"alpha_max must lie in (0, 1], got {alpha_max!r}")
        if not beta_max > 1:
            raise ValueError(f"beta_max must be greater than 1, got {beta_max!r}")
        for name, value in (("sigma", sigma), ("delta", delta), ("eta", eta)):
            if value < 0:
                raise ValueError(f"{name} must be non-negative, got {value!r}")
        if extrapolation not in synthesize.EXTRAPOLATION_MODES:
            raise ValueError(
                f"extrapolation must be one of {synthesize.EXTRAPOLATION_MODES}, got {extrapolation!r}"
            )
        if logits_path not in LOGITS_PATHS:
            raise ValueError(f"logits_path must be one of {LOGITS_PATHS}, got {logits_path!r}")
        self.counts = (
            num_interpolate, num_extrapolate, num_mixup, num_noise, num_perturb, num_adversarial
        )
        if num_hard == 0 and sum(self.counts) > 0:
            raise ValueError("num_hard must be at least 1 when any synthetic count is positive")
        self.num_hard = num_hard
        self.alpha_max, self.beta_max = float(alpha_max), float(beta_max)
        self.sigma, self.delta, self.eta = float(sigma), float(delta), float(eta)
        self.extrapolation = extrapolation
        self.logits_path = logits_path
        self._compiled_logits = None  # set by compile_path

    def compile_path(self, mode: str = "default") -> None:
        """Compile the ``"dots"`` path after the selection (``synthetic_logits_of_draws``) with ``torch.compile``.

        The selection (data-dependent shapes on the fast threshold path) and the random draws stay eager,
        so the compiled path gives the same negatives as the eager one for the same generator state.
        """
        self._compiled_logits = torch.compile(synthetic_logits_of_draws, mode=mode, dynamic=False)

    @property
    def num_synthetic(self) -> int:
        """S, synthetic negatives per query."""
        return sum(self.counts)

    def extra_repr(self) -> str:
        names = ", ".join(f"{n}={c}" for n, c in zip(STRATEGIES, self.counts))
        return f"num_hard={self.num_hard}, {names}, extrapolation={self.extrapolation}, logits_path={self.logits_path}"

    # ------------------------------------------------------------------ public contract
    def sample(
        self,
        query: torch.Tensor,
        queue: torch.Tensor,
        generator: torch.Generator | None = None,
        queue_logits: torch.Tensor | None = None,
        exclude: torch.Tensor | None = None,
        hardest: torch.Tensor | None = None,
    ) -> SyntheticSample:
        """Draw the synthetic negatives of a batch.

        Args:
            query: (B, D) unit rows.
            queue: (K, D) unit rows.
            generator: source of every random draw; the global RNG when None.
            queue_logits: optional precomputed ``query @ queue.T`` (B, K), unmasked (``exclude``
                does the masking); computed here when None.
            exclude: optional (B, K) bool, queue rows never to select (same-image keys).
            hardest: optional (B, N) precomputed ``select_hardest`` rows (for example from
                ``queue_logits_and_hardest``); selection is skipped when given.

        Returns:
            :class:`SyntheticSample` with S = sum of the counts.
        """
        return self._sample(query, queue, self._draw(query, queue, generator, queue_logits, exclude, hardest))

    def _sample(self, query: torch.Tensor, queue: torch.Tensor, draws: _Draws) -> SyntheticSample:
        q = query.detach()
        n = queue.detach()
        pieces = []
        for name, first, coef in zip(STRATEGIES, draws.first, draws.coef):
            if first.shape[1] == 0:
                continue
            source = n[first]  # (B, n_t, D)
            if name == "interpolate":
                pieces.append(synthesize.interpolate(q, source, coef))
            elif name == "extrapolate":
                pieces.append(synthesize.extrapolate(q, source, coef, self.extrapolation))
            elif name == "mixup":
                pieces.append(synthesize.mixup(source, n[draws.second], coef))
            elif name == "noise":
                pieces.append(synthesize.add_noise(source, draws.noise))
            elif name == "perturb":
                pieces.append(synthesize.perturb(q, source, self.delta))
            else:  # adversarial
                pieces.append(synthesize.adversarial(q, source, self.eta))
        batch, dim = q.shape
        if pieces:
            vectors = torch.cat(pieces, dim=1)  # (B, S, D)
        else:
            vectors = q.new_zeros(batch, 0, dim)  # (B, 0, D)
        strategy, index = self._layout(draws, q.device)
        coef = torch.cat(draws.coef, dim=1)  # (B, S)
        return SyntheticSample(vectors=vectors, strategy=strategy, index=index, coef=coef)

    def logits(
        self,
        query: torch.Tensor,
        queue: torch.Tensor,
        generator: torch.Generator | None = None,
        queue_logits: torch.Tensor | None = None,
        exclude: torch.Tensor | None = None,
        hardest: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Un-tempered logits ``q.s`` of the synthetic negatives, (B, S).

        Equals ``einsum("bd,bsd->bs", query, sample(...).vectors)`` for the same generator state (up
        to rounding on the ``"dots"`` path); the gradient flows into ``query`` only (the synthetic
        vectors are detached). Arguments as :meth:`sample`.
        """
        return self._logits(query, queue, generator, queue_logits, exclude, hardest, with_sources=False)[0]

    def logits_and_sources(
        self,
        query: torch.Tensor,
        queue: torch.Tensor,
        generator: torch.Generator | None = None,
        queue_logits: torch.Tensor | None = None,
        exclude: torch.Tensor | None = None,
        hardest: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, SyntheticSources]:
        """:meth:`logits` and where the negatives came from (for the analyses), from one set of draws."""
        return self._logits(query, queue, generator, queue_logits, exclude, hardest, with_sources=True)

    def _logits(self, query, queue, generator, queue_logits, exclude, hardest, with_sources: bool):
        """(logits (B, S), SyntheticSources or None): the layout of the sources is built only when asked for."""
        if queue_logits is None and self.logits_path == "dots":
            queue_logits = torch.einsum("bd,kd->bk", query.detach(), queue.detach())  # (B, K)
        hard = self.select(query, queue, queue_logits, exclude, hardest)  # (B, N)
        positions = self.draw(query.shape[0], query.shape[1], generator, query.device, query.dtype)
        compiled = self._compiled_logits is not None and self.num_synthetic and self.logits_path == "dots"
        # Queue rows of the drawn positions: eagerly only when something here reads them (the compiled path
        # gathers its own inside the graph).
        draws = rows_of_positions(hard, positions) if with_sources or not compiled else None
        sources = None
        if with_sources:
            strategy, index = self._layout(draws, query.device)
            sources = SyntheticSources(hardest=draws.hard, index=index, strategy=strategy)
        if compiled:
            logits = self._compiled_logits(
                query, queue, queue_logits, hard, positions.first, positions.second, positions.coef, positions.noise,
                self.extrapolation, self.delta, self.eta,
            )  # (B, S)
        elif self.logits_path == "vectors":
            vectors = self._sample(query, queue, draws).vectors
            logits = torch.einsum("bd,bsd->bs", query, vectors.to(query.dtype))  # (B, S)
        else:
            logits = synthetic_logits_from_dots(
                query, queue, queue_logits, draws.first, draws.second, draws.coef, draws.noise,
                self.extrapolation, self.delta, self.eta,
            )  # (B, S)
        return logits, sources

    def _layout(self, draws: _Draws, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(strategy (S,) ids 1..6, index (B, S, 2) source rows; column 1 is mixup's second, else -1)."""
        strategy = torch.repeat_interleave(
            torch.arange(1, 7, device=device), torch.tensor(self.counts, device=device)
        )  # (S,)
        second_column = [torch.full_like(f, -1) for f in draws.first]
        second_column[2] = draws.second
        index = torch.stack([torch.cat(draws.first, dim=1), torch.cat(second_column, dim=1)], dim=-1)  # (B, S, 2)
        return strategy, index

    # ------------------------------------------------------------------ random draws
    def draw(
        self,
        batch: int,
        dim: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> SynthesisDraws:
        """Every random number of a batch of ``batch`` queries of dimension ``dim``, in the documented order."""
        device = torch.device(device)

        def positions(count: int) -> torch.Tensor:
            if count == 0:  # draws nothing, so the generator state does not depend on empty strategies
                return torch.zeros(batch, 0, dtype=torch.long, device=device)
            return torch.randint(self.num_hard, (batch, count), generator=generator, device=device)  # (B, count)

        def uniform(count: int, low: float, high: float) -> torch.Tensor:
            u = torch.rand(batch, count, generator=generator, device=device, dtype=dtype)
            return low + (high - low) * u  # (B, count)

        n1, n2, n3, n4, n5, n6 = self.counts
        first, coef = [], []
        first.append(positions(n1))
        coef.append(uniform(n1, 0.0, self.alpha_max))
        first.append(positions(n2))
        coef.append(uniform(n2, 1.0, self.beta_max))
        first.append(positions(n3))
        second = positions(n3)
        coef.append(uniform(n3, 0.0, 1.0))
        first.append(positions(n4))
        noise = self.sigma * torch.randn(batch, n4, dim, generator=generator, device=device, dtype=dtype)  # (B, n4, D)
        for count in (n4, n5, n6):
            coef.append(torch.zeros(batch, count, device=device, dtype=dtype))
        first.append(positions(n5))
        first.append(positions(n6))
        return SynthesisDraws(first=first, second=second, coef=coef, noise=noise)

    def select(
        self,
        query: torch.Tensor,
        queue: torch.Tensor,
        queue_logits: torch.Tensor | None = None,
        exclude: torch.Tensor | None = None,
        hardest: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, N) queue rows of each query's N hardest negatives (``hardest`` itself when given)."""
        if query.dim() != 2 or queue.dim() != 2 or query.shape[1] != queue.shape[1]:
            raise ValueError(
                f"query must be (B, D) and queue (K, D) with the same D; got query "
                f"{tuple(query.shape)} and queue {tuple(queue.shape)}"
            )
        batch = query.shape[0]
        if self.num_synthetic == 0:
            return torch.zeros(batch, 0, dtype=torch.long, device=query.device)  # (B, 0)
        check_num_hard(self.num_hard, queue.shape[0])
        if hardest is not None:
            if hardest.shape != (batch, self.num_hard):
                raise ValueError(
                    f"hardest must be (B, N) = {(batch, self.num_hard)}, got {tuple(hardest.shape)}"
                )
            return hardest
        if queue_logits is None:
            queue_logits = torch.einsum("bd,kd->bk", query.detach(), queue.detach())  # (B, K)
        return select_hardest(mask_logits(queue_logits.detach(), exclude), self.num_hard)

    def _draw(
        self,
        query: torch.Tensor,
        queue: torch.Tensor,
        generator: torch.Generator | None,
        queue_logits: torch.Tensor | None,
        exclude: torch.Tensor | None,
        hardest: torch.Tensor | None = None,
    ) -> _Draws:
        """The selection, then the draws, with positions turned into queue rows."""
        hard = self.select(query, queue, queue_logits, exclude, hardest)
        draws = self.draw(query.shape[0], query.shape[1], generator, query.device, query.dtype)
        return rows_of_positions(hard, draws)
