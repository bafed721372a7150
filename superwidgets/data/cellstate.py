"""The neuron world as the biology works: a latent cell state drives both the image and the expression.

:func:`superwidgets.data.neurons` plants 20 sparse factors and loads every gene on all of them,
which suits superposition experiments on supervised models but cannot reproduce the
patient-neuron study (arXiv 2606.31394): there, a self-supervised encoder that never saw a
label embeds images of patient-derived neurons, and the per-image cell-death rate is tested for
locality *within* each genotype class. This module generates a world in which that question
has a known answer:

* every cell has a **cell state**: a small set of named programs (:data:`PROGRAM_NAMES`),
  each a value in [0, 1], drawn per cell from distributions that depend on the cell's
  genotype (:data:`GENOTYPES`), its donor and its well;
* the five **shared** programs (identity, size, stress, aggregation, degeneration) drive both
  the **image** — through :func:`superwidgets.data.neurons.render_neurons`, by a documented
  map from programs to the renderer's factors (:data:`IMAGE_MAP`) — and the **expression**
  counts, through a known sparse loading of programs on genes;
* two **expression-only** programs (interferon, metabolic) load on genes but never reach the
  image; **image-only** nuisances (:data:`NUISANCE_NAMES`: per-channel staining, focus, plate
  effects, soma elongation, AIS position) reach the image but never the expression;
* expression counts are negative binomial (gamma–Poisson) around a per-cell library size, with
  technical dropout;
* cells live in **wells** of ``cells_per_well`` cells of one donor; a well's **cell-death
  rate** is the fraction of dying cells counted in it (binomial), whose expectation is the
  mean death probability of its cells, a logistic function of their degeneration program.

Every component draws from its own named random stream (``numpy.random.SeedSequence(seed)``
spawned once per name in :data:`STREAMS`), so changing, say, the expression noise leaves the
images and programs bit-identical. See ``docs/study.md`` ("The world and the encoder").
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .neurons import FACTOR_NAMES, render_neurons

__all__ = [
    "EXPRESSION_ONLY_PROGRAMS",
    "GENOTYPES",
    "GENOTYPE_LOGIT",
    "IMAGE_MAP",
    "NUISANCE_NAMES",
    "PROGRAM_NAMES",
    "SHARED_PROGRAMS",
    "STREAMS",
    "CellStateWorld",
    "cell_states",
    "death_probability",
]

#: The cell-state programs, in column order of ``CellStateWorld.programs``.
PROGRAM_NAMES: tuple[str, ...] = (
    "identity",  # dopaminergic identity / maturity: TH, DDC, neurite arbour         (image + expression)
    "size",  # cell size / growth (cell-cycle-like): soma size, ribosomal genes     (image + expression)
    "stress",  # oxidative / lysosomal stress: HMOX1, NQO1; shortens the AIS        (image + expression)
    "aggregation",  # α-synuclein aggregation: puncta, inclusions; SNCA, HSPA1A    (image + expression)
    "degeneration",  # pyknosis, neurite beading; CASP3, BAX — drives cell death   (image + expression)
    "interferon",  # interferon response: ISG15, IFIT1                               (expression only)
    "metabolic",  # glycolytic state: LDHA, PGK1                                    (expression only)
)
#: Programs that reach both modalities.
SHARED_PROGRAMS: tuple[str, ...] = PROGRAM_NAMES[:5]
#: Programs that reach the expression only.
EXPRESSION_ONLY_PROGRAMS: tuple[str, ...] = PROGRAM_NAMES[5:]
#: Genotype classes, in the order of the integer codes in ``CellStateWorld.genotype``.
GENOTYPES: tuple[str, ...] = ("healthy", "LRRK2", "GBA", "SNCA")
#: Image-only nuisance variables, columns of ``CellStateWorld.nuisance``.
NUISANCE_NAMES: tuple[str, ...] = (
    "gain_neurites",  # staining gain per channel (plate gain × cell gain)
    "gain_nuclei",
    "gain_puncta",
    "gain_ais",
    "focus",  # 0 sharp … 1 fully defocused (mixed with a Gaussian blur)
    "elongation",  # soma elongation (renderer factor)
    "ais_position",  # AIS start distance (renderer factor)
)
#: The named random streams, spawned from ``SeedSequence(seed)`` in this order.
STREAMS: tuple[str, ...] = ("design", "donors", "wells", "programs", "nuisance", "layout", "expression", "death")

_P = {name: i for i, name in enumerate(PROGRAM_NAMES)}
_F = {name: i for i, name in enumerate(FACTOR_NAMES)}

#: Logit offset of each program per genotype (``healthy, LRRK2, GBA, SNCA``), added to the program's base logit.
GENOTYPE_LOGIT: dict[str, tuple[float, float, float, float]] = {
    "identity": (0.0, -1.5, -0.8, -2.0),
    "size": (0.0, 0.6, -0.9, 0.3),
    "stress": (0.0, 2.0, 2.6, 1.2),
    "aggregation": (0.0, 0.8, 1.8, 3.2),
    "degeneration": (0.0, 1.8, 0.8, 1.4),
    "interferon": (0.0, 0.0, 0.8, 0.0),
    "metabolic": (0.0, 0.8, -0.6, 0.0),
}
# base logit of each program (healthy, average donor); sparse programs: activation probability
_BASE = {
    "identity": 1.0,
    "size": 0.0,
    "stress": -1.8,
    "aggregation": -2.2,
    "degeneration": -2.6,
    "interferon": -1.5,
    "metabolic": 0.0,
}
_DENSE = ("identity", "size", "metabolic")  # logit-normal, every cell; the others: on/off × magnitude
# within-cell couplings of the activation logits: stress → aggregation, stress and aggregation → degeneration
_COUPLING = {"aggregation": {"stress": 1.0}, "degeneration": {"stress": 1.2, "aggregation": 1.4}}

#: Renderer factor = ``a + b · program`` (clipped to [0, 1]); ``aggregate_size`` uses ``aggregation²``.
IMAGE_MAP: dict[str, tuple[str, float, float]] = {
    "neurite_length": ("identity", 0.25, 0.65),
    "branch_count": ("identity", 0.15, 0.7),
    "map2_intensity": ("identity", 0.3, 0.5),
    "soma_size": ("size", 0.0, 1.0),
    "ais_length": ("stress", 0.85, -0.75),
    "puncta_density": ("aggregation", 0.0, 1.0),
    "aggregate_size": ("aggregation", 0.0, 1.0),
    "snca_triplication": ("aggregation", 0.0, 0.6),
    "nuclear_condensation": ("degeneration", 0.0, 1.0),
    "neurite_degeneration": ("degeneration", 0.0, 1.0),
}

# real marker names for the first genes of each program (the rest are named PROGRAM_nn)
_MARKERS = {
    "identity": ("TH", "DDC", "SLC6A3", "KCNJ6", "NR4A2", "FOXA2", "LMX1B", "EN1"),
    "size": ("RPS6", "EEF1A1", "RPL13", "CCND1", "MYC", "NPM1"),
    "stress": ("HMOX1", "NQO1", "ATF4", "DDIT3", "TXNRD1", "GCLM", "CTSD", "LAMP1"),
    "aggregation": ("SNCA", "HSPA1A", "SQSTM1", "DNAJB1", "HSPB1", "UBB"),
    "degeneration": ("CASP3", "BAX", "GADD45A", "BBC3", "PMAIP1", "CDKN1A"),
    "interferon": ("ISG15", "IFIT1", "MX1", "OAS1", "IFI6", "STAT1"),
    "metabolic": ("LDHA", "PGK1", "ENO1", "GAPDH", "PKM", "ALDOA"),
}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def death_probability(degeneration: np.ndarray) -> np.ndarray:
    """Probability that a cell scores as dying in the assay: ``sigmoid(−4 + 8 · degeneration)``.

    Parameters
    ----------
    degeneration : numpy.ndarray
        The ``degeneration`` program, values in [0, 1].

    Returns
    -------
    numpy.ndarray, same shape, float64
        0.018 for a cell without degeneration, 0.5 at 0.5, 0.98 at 1.
    """
    d = np.asarray(degeneration, dtype=np.float64)
    return _sigmoid(-4.0 + 8.0 * d)


@dataclasses.dataclass(repr=False)
class CellStateWorld:
    """A synthetic neuron population whose images and expression share one latent cell state.

    Attributes
    ----------
    images : numpy.ndarray, shape (n, 4, S, S), float32 in [0, 1]
        Multiplexed images (channels ``neurites, nuclei, puncta, ais``), with the image-only
        nuisances applied.
    counts : numpy.ndarray, shape (n, G), int32
        Expression counts (negative binomial with dropout).
    programs : numpy.ndarray, shape (n, P), float32 in [0, 1]
        The cell state, columns :data:`PROGRAM_NAMES`.
    program_names : list of str
    loadings : numpy.ndarray, shape (P, G), float32
        Log-fold loading of each gene on each program (sparse; mean count × ``exp(loading ·
        program)``).
    gene_names : list of str
    gene_program : numpy.ndarray, shape (G,), int64
        The program each gene is a marker of (index into :data:`PROGRAM_NAMES`), −1 for background
        genes.
    gene_base : numpy.ndarray, shape (G,), float32
        Log baseline abundance of each gene (before library-size scaling).
    dispersion : numpy.ndarray, shape (G,), float32
        Negative-binomial size ``θ`` per gene: variance ``μ + μ²/θ``.
    library_size : numpy.ndarray, shape (n,), float32
        Expected total count of each cell at baseline (log-normal).
    nuisance : numpy.ndarray, shape (n, len(NUISANCE_NAMES)), float32
        Image-only nuisance values, columns :data:`NUISANCE_NAMES`.
    image_factors : numpy.ndarray, shape (n, 20), float32
        What was passed to :func:`~superwidgets.data.neurons.render_neurons` (columns
        :data:`~superwidgets.data.neurons.FACTOR_NAMES`).
    cell_seeds : numpy.ndarray, shape (n,), int64
        Per-cell layout seeds of the renderer.
    genotype : numpy.ndarray, shape (n,), int64
        Index into :data:`GENOTYPES`.
    genotype_names : list of str
    donor : numpy.ndarray, shape (n,), int64
        Donor id; donor ``d`` has genotype ``donor_genotype[d]``.
    donor_genotype : numpy.ndarray, shape (n_donors,), int64
    well : numpy.ndarray, shape (n,), int64
        Well id; every well holds cells of one donor.
    plate : numpy.ndarray, shape (n,), int64
        Plate id (staining gains and background differ by plate).
    death_prob : numpy.ndarray, shape (n,), float32
        Each cell's death probability, :func:`death_probability` of its degeneration.
    well_death_rate : numpy.ndarray, shape (n_wells,), float32
        Measured death rate of each well: ``Binomial(well_population, mean death_prob of its
        cells) / well_population``.
    death_rate : numpy.ndarray, shape (n,), float32
        ``well_death_rate[well]``: the per-image death rate, as the study used it.
    train, test : numpy.ndarray of int64
        Cell indices of a split by well (25 % of each genotype's wells held out).
    seed, image_size, cells_per_well, well_population : int
    noise : float
        Pixel noise s.d. of the renderer.
    """

    images: np.ndarray
    counts: np.ndarray
    programs: np.ndarray
    program_names: list[str]
    loadings: np.ndarray
    gene_names: list[str]
    gene_program: np.ndarray
    gene_base: np.ndarray
    dispersion: np.ndarray
    library_size: np.ndarray
    nuisance: np.ndarray
    image_factors: np.ndarray
    cell_seeds: np.ndarray
    genotype: np.ndarray
    genotype_names: list[str]
    donor: np.ndarray
    donor_genotype: np.ndarray
    well: np.ndarray
    plate: np.ndarray
    death_prob: np.ndarray
    well_death_rate: np.ndarray
    death_rate: np.ndarray
    train: np.ndarray
    test: np.ndarray
    seed: int
    image_size: int
    cells_per_well: int
    well_population: int
    noise: float

    def __len__(self) -> int:
        return int(self.programs.shape[0])

    def __repr__(self) -> str:
        n, g = self.counts.shape
        return (
            f"CellStateWorld(n={n}, genes={g}, image_size={self.image_size}, wells={len(self.well_death_rate)}, "
            f"donors={len(self.donor_genotype)}, seed={self.seed})"
        )

    def program(self, name: str) -> np.ndarray:
        """One program's values ``(n,)``, by name (one of :data:`PROGRAM_NAMES`)."""
        if name not in _P:
            raise ValueError(f"unknown program {name!r}; choose one of {list(PROGRAM_NAMES)}")
        return self.programs[:, _P[name]]


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        rng = f"between {low} and {high}" if high is not None else f"≥ {low}"
        raise ValueError(f"{name} must be {rng}; got {value}")
    return int(value)


def _check_float(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number; got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}]; got {value}")
    return float(value)


def _gauss_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (n, c, s, s) float32 images over the last two axes (reflect padding)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(img, sigma=(0, 0, sigma, sigma), mode="reflect", truncate=3.0).astype(np.float32)


def cell_states(
    n: int = 6000,
    seed: int = 0,
    *,
    image_size: int = 48,
    n_genes: int = 600,
    markers_per_program: int = 40,
    donors_per_genotype: int = 3,
    cells_per_well: int = 8,
    n_plates: int = 6,
    well_population: int = 200,
    library_size: float = 1500.0,
    dropout: float = 0.1,
    noise: float = 0.03,
    nuisance: float = 1.0,
) -> CellStateWorld:
    """Generate a neuron world in which one latent cell state drives images and expression.

    The generative process, in order (each step from its own stream in :data:`STREAMS`):

    1. **Design.** ``ceil(n / cells_per_well)`` wells; genotypes assigned to wells in turn
       (balanced), each well to one of the genotype's ``donors_per_genotype`` donors and to one
       of ``n_plates`` plates at random. Cell ``i`` sits in well ``i // cells_per_well``.
    2. **Donors and wells.** Each donor shifts every program's logit by ``N(0, 0.4²)``; each well
       shifts the stress and degeneration logits by ``N(0, 1)`` (culture conditions).
    3. **Programs.** For program ``k`` the logit is ``base_k + GENOTYPE_LOGIT[k][genotype] +
       donor + well (+ couplings: stress → aggregation ×1.0; stress ×1.2 and aggregation ×1.4 →
       degeneration)``. Dense programs (identity, size, metabolic) are
       ``sigmoid(logit + N(0, 0.8²))``; sparse ones (stress, aggregation, degeneration, interferon)
       are active with probability ``sigmoid(logit)`` and then take a magnitude ``U(0.3, 1)``.
    4. **Images.** Programs map to the renderer's factors by :data:`IMAGE_MAP`; soma elongation
       ``U(0, 0.6)`` and AIS position ``U(0, 1)`` are image-only nuisances; the image is
       rendered by :func:`~superwidgets.data.neurons.render_neurons`, then per channel multiplied
       by a plate gain (log-normal, s.d. 0.2) × a cell gain (log-normal, s.d. 0.1), mixed with a
       blurred copy by a focus weight ``U(0, 1)²``, offset by a plate background ``U(0, 0.04)``
       and clipped to [0, 1]. ``nuisance`` scales the log-gain s.d.s, focus and background.
    5. **Expression.** Each program has ``markers_per_program`` marker genes (log-fold
       ``U(0.8, 2.0)``; 20 % of markers also load ``U(0.3, 0.8)`` on a second program), the rest
       are background genes. Mean count ``μ_ig = L_i · exp(b_g + Σ_k W_kg p_ik + donor_dg) /
       Σ_g exp(b_g)`` with baseline ``b_g ~ N(0, 1)``, a donor batch effect ``N(0, 0.1²)`` per gene,
       library size ``L_i`` log-normal around ``library_size`` (s.d. 0.35). Counts are
       gamma–Poisson with size ``θ_g`` (log-normal around 5), then each entry is zeroed with
       probability ``dropout``.
    6. **Death.** ``death_prob = death_probability(degeneration)``; a well's measured rate is
       ``Binomial(well_population, mean death_prob of its cells) / well_population``.

    Parameters
    ----------
    n : int
        Number of cells (≥ 8).
    seed : int
        Seed of every stream (≥ 0).
    image_size : int
        Image side in pixels (16–128; 48 by default, where condensed nuclei and beaded neurites
        are a few pixels wide).
    n_genes : int
        Number of genes; must be at least ``7 · markers_per_program``.
    markers_per_program : int
        Marker genes per program (≥ 1).
    donors_per_genotype : int
        Donors of each genotype (≥ 1).
    cells_per_well : int
        Imaged cells per well (≥ 1).
    n_plates : int
        Plates (≥ 1).
    well_population : int
        Cells counted per well for the death rate (≥ 1).
    library_size : float
        Median total count per cell at baseline (> 0).
    dropout : float
        Probability that a count is zeroed (0 to 0.9).
    noise : float
        Pixel noise s.d. of the renderer (0 to 0.5).
    nuisance : float
        Strength of the image-only nuisances (0 = none, 1 = default, up to 3).

    Returns
    -------
    CellStateWorld
    """
    n = _check_int("n", n, 8)
    seed = _check_int("seed", seed, 0)
    image_size = _check_int("image_size", image_size, 16, 128)
    markers = _check_int("markers_per_program", markers_per_program, 1)
    n_genes = _check_int("n_genes", n_genes, 1)
    if n_genes < len(PROGRAM_NAMES) * markers:
        raise ValueError(
            f"n_genes ({n_genes}) must be at least {len(PROGRAM_NAMES)} × markers_per_program = "
            f"{len(PROGRAM_NAMES) * markers}; raise n_genes or lower markers_per_program"
        )
    dpg = _check_int("donors_per_genotype", donors_per_genotype, 1)
    cpw = _check_int("cells_per_well", cells_per_well, 1)
    n_plates = _check_int("n_plates", n_plates, 1)
    pop = _check_int("well_population", well_population, 1)
    lib = _check_float("library_size", library_size, 1e-6, 1e9)
    dropout = _check_float("dropout", dropout, 0.0, 0.9)
    noise = _check_float("noise", noise, 0.0, 0.5)
    nuis = _check_float("nuisance", nuisance, 0.0, 3.0)

    spawned = np.random.SeedSequence(seed).spawn(len(STREAMS))
    rngs = {name: np.random.default_rng(s) for name, s in zip(STREAMS, spawned, strict=True)}
    n_g, n_p = len(GENOTYPES), len(PROGRAM_NAMES)

    # 1. design --------------------------------------------------------------------------------
    rng = rngs["design"]
    n_wells = math.ceil(n / cpw)
    well_geno = np.resize(rng.permutation(n_g), n_wells)
    well_geno = well_geno[rng.permutation(n_wells)]
    donor_genotype = np.repeat(np.arange(n_g), dpg)
    well_donor = well_geno * dpg + rng.integers(0, dpg, n_wells)
    well_plate = rng.integers(0, n_plates, n_wells)
    well = np.arange(n) // cpw
    genotype = well_geno[well].astype(np.int64)
    donor = well_donor[well].astype(np.int64)
    plate = well_plate[well].astype(np.int64)
    # split by well: a quarter of each genotype's wells held out
    held = np.zeros(n_wells, dtype=bool)
    for g in range(n_g):
        ws = np.flatnonzero(well_geno == g)
        if len(ws) > 1:
            held[rng.permutation(ws)[: max(1, round(0.25 * len(ws)))]] = True
    train = np.flatnonzero(~held[well]).astype(np.int64)
    test = np.flatnonzero(held[well]).astype(np.int64)

    # 2. donor and well effects ---------------------------------------------------------------
    donor_fx = rngs["donors"].normal(0.0, 0.4, (len(donor_genotype), n_p))
    well_fx = rngs["wells"].normal(0.0, 1.0, (n_wells, 2))  # stress, degeneration

    # 3. programs -----------------------------------------------------------------------------
    rng = rngs["programs"]
    z = rng.standard_normal((n, n_p))
    u_on = rng.random((n, n_p))
    u_mag = rng.random((n, n_p))
    prog = np.zeros((n, n_p))
    for name in PROGRAM_NAMES:  # in order: couplings read programs drawn earlier
        k = _P[name]
        logit = _BASE[name] + np.asarray(GENOTYPE_LOGIT[name])[genotype] + donor_fx[donor, k]
        if name == "stress":
            logit = logit + well_fx[well, 0]
        if name == "degeneration":
            logit = logit + well_fx[well, 1]
        for parent, w in _COUPLING.get(name, {}).items():
            logit = logit + w * prog[:, _P[parent]]
        if name in _DENSE:
            prog[:, k] = _sigmoid(logit + 0.8 * z[:, k])
        else:
            prog[:, k] = np.where(u_on[:, k] < _sigmoid(logit), 0.3 + 0.7 * u_mag[:, k], 0.0)
    programs = prog.astype(np.float32)

    # 4. images -------------------------------------------------------------------------------
    rng = rngs["nuisance"]
    plate_gain = np.exp(rng.normal(0.0, 0.2 * nuis, (n_plates, 4)))
    plate_bg = rng.uniform(0.0, 0.04 * nuis, (n_plates, 4))
    cell_gain = np.exp(rng.normal(0.0, 0.1 * nuis, (n, 4)))
    focus = np.clip(nuis * rng.random(n) ** 2, 0.0, 1.0)
    elong = 0.6 * rng.random(n)
    ais_pos = rng.random(n)
    gain = plate_gain[plate] * cell_gain
    factors = np.zeros((n, len(FACTOR_NAMES)))
    for fname, (pname, a, b) in IMAGE_MAP.items():
        p = prog[:, _P[pname]]
        factors[:, _F[fname]] = a + b * (p**2 if fname == "aggregate_size" else p)
    factors[:, _F["soma_elongation"]] = elong
    factors[:, _F["ais_position"]] = ais_pos
    factors = np.clip(factors, 0.0, 1.0).astype(np.float32)  # rendered from exactly the stored values
    cell_seeds = rngs["layout"].integers(0, 2**31 - 1, n).astype(np.int64)
    images = render_neurons(factors, cell_seeds, image_size, noise)
    blurred = _gauss_blur(images, 1.2 * image_size / 48)
    f4 = focus[:, None, None, None].astype(np.float32)
    images = (1 - f4) * images + f4 * blurred
    images = images * gain[:, :, None, None].astype(np.float32) + plate_bg[plate][:, :, None, None].astype(np.float32)
    images = np.clip(images, 0.0, 1.0).astype(np.float32)
    nuisance_arr = np.column_stack([gain, focus, elong, ais_pos]).astype(np.float32)

    # 5. expression ---------------------------------------------------------------------------
    rng = rngs["expression"]
    order = rng.permutation(n_genes)
    gene_program = np.full(n_genes, -1, dtype=np.int64)
    loadings = np.zeros((n_p, n_genes))
    for k in range(n_p):
        idx = order[k * markers : (k + 1) * markers]
        gene_program[idx] = k
        loadings[k, idx] = rng.uniform(0.8, 2.0, markers)
        second = rng.random(markers) < 0.2
        other = (k + rng.integers(1, n_p, markers)) % n_p
        loadings[other[second], idx[second]] = rng.uniform(0.3, 0.8, int(second.sum()))
    names = []
    counters = dict.fromkeys(PROGRAM_NAMES, 0)
    bg = 0
    for gidx in range(n_genes):
        k = gene_program[gidx]
        if k < 0:
            bg += 1
            names.append(f"bg_{bg:04d}")
            continue
        pname = PROGRAM_NAMES[k]
        j = counters[pname]
        counters[pname] += 1
        real = _MARKERS[pname]
        names.append(real[j] if j < len(real) else f"{pname}_{j - len(real) + 1:02d}")
    gene_base = rng.normal(0.0, 1.0, n_genes)
    donor_batch = rng.normal(0.0, 0.1, (len(donor_genotype), n_genes))
    theta = np.exp(rng.normal(math.log(5.0), 0.5, n_genes))
    lib_size = np.exp(rng.normal(math.log(lib), 0.35, n))
    log_mu = gene_base[None, :] + prog @ loadings + donor_batch[donor] - np.log(np.exp(gene_base).sum())
    mu = lib_size[:, None] * np.exp(log_mu)
    lam = rng.gamma(theta[None, :], mu / theta[None, :])
    counts = rng.poisson(lam)
    counts[rng.random(counts.shape) < dropout] = 0
    counts = counts.astype(np.int32)

    # 6. death --------------------------------------------------------------------------------
    dp = death_probability(prog[:, _P["degeneration"]])
    well_mean = np.bincount(well, weights=dp, minlength=n_wells) / np.bincount(well, minlength=n_wells)
    well_rate = rngs["death"].binomial(pop, well_mean) / pop

    return CellStateWorld(
        images=images,
        counts=counts,
        programs=programs,
        program_names=list(PROGRAM_NAMES),
        loadings=loadings.astype(np.float32),
        gene_names=names,
        gene_program=gene_program,
        gene_base=gene_base.astype(np.float32),
        dispersion=theta.astype(np.float32),
        library_size=lib_size.astype(np.float32),
        nuisance=nuisance_arr,
        image_factors=factors,
        cell_seeds=cell_seeds,
        genotype=genotype,
        genotype_names=list(GENOTYPES),
        donor=donor,
        donor_genotype=donor_genotype.astype(np.int64),
        well=well.astype(np.int64),
        plate=plate,
        death_prob=dp.astype(np.float32),
        well_death_rate=well_rate.astype(np.float32),
        death_rate=well_rate[well].astype(np.float32),
        train=train,
        test=test,
        seed=seed,
        image_size=image_size,
        cells_per_well=cpw,
        well_population=pop,
        noise=noise,
    )
