"""SAE codes as single-cell data: hand them to scanpy's clustering and trajectory tools.

Each image's sparse code is treated like one cell's expression profile, each
latent like a gene. :func:`to_anndata` wraps codes in an
:class:`anndata.AnnData`; :func:`singlecell_summary` runs the scverse tools the
patient-neuron study used (arXiv 2606.31394) with their own implementations:
``sc.pp.pca``, ``sc.pp.neighbors``, ``sc.tl.leiden`` (python-igraph's
Leiden), ``sc.tl.paga``, ``sc.tl.diffmap`` and ``sc.tl.dpt``, and optionally
PHATE (``sc.external.tl.phate``).

scanpy, anndata and python-igraph are optional: ``pip install
"superwidgets[singlecell]"``. They are imported inside the functions, so
``import superwidgets`` never loads them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = ["singlecell_summary", "to_anndata"]

_INSTALL = 'pip install "superwidgets[singlecell]"'


def _require(module: str) -> Any:
    """Import one of the single-cell extras, or raise an ImportError that says how to install them."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"superwidgets.science.singlecell needs {module} (scanpy, anndata and python-igraph): {_INSTALL}"
        ) from exc


def _codes(codes: Any) -> Any:
    """Codes as a new float32 dense array or scipy CSR matrix (never the caller's memory), finite, 2-D."""
    import scipy.sparse as sp

    if hasattr(codes, "detach"):
        codes = codes.detach().cpu()
        codes = codes.to_dense() if codes.is_sparse else codes
        codes = codes.numpy()
    if sp.issparse(codes):
        M = sp.csr_matrix(codes, dtype=np.float32, copy=True)
        data = M.data
    else:
        try:
            M = np.array(codes, dtype=np.float32, copy=True)
        except (TypeError, ValueError):
            raise ValueError(
                f"codes must be a numeric array (n cells, d latents); got {type(codes).__name__}"
            ) from None
        data = M
    if M.ndim != 2:
        raise ValueError(f"codes must be 2-D (n cells, d latents); got shape {M.shape}")
    if M.shape[0] < 3 or M.shape[1] < 1:
        raise ValueError(f"codes needs at least 3 cells (rows) and 1 latent (column); got shape {M.shape}")
    if not np.isfinite(data).all():
        raise ValueError("codes contains NaN or Inf; drop or impute those cells first")
    return M


def to_anndata(codes: Any, obs: Any = None, var_names: Any = None) -> Any:
    """Wrap codes (cells × latents) in an :class:`anndata.AnnData`.

    Parameters
    ----------
    codes : array-like (n, d), scipy sparse matrix or tensor
        One row per cell (image), one column per latent; copied into ``.X``
        as float32 (sparse input stays sparse, CSR), so scanpy's in-place
        steps never change the caller's array.
    obs : pandas.DataFrame or dict of column -> sequence, optional
        Per-cell annotations (genotype, death rate, ...), one row per cell,
        kept in ``.obs`` in the same order. Its index is replaced by
        ``"0", "1", ...`` (cell names).
    var_names : sequence of str, optional
        One name per latent; default ``"latent_0", "latent_1", ...``.

    Returns
    -------
    anndata.AnnData

    Raises
    ------
    ImportError
        anndata or pandas is not installed (the message says how to install them).
    ValueError
        ``codes`` not 2-D or not finite, or ``obs`` / ``var_names`` of the wrong length.

    Examples
    --------
    >>> adata = to_anndata(codes, obs={"genotype": genotype, "death": death_rate})  # doctest: +SKIP
    >>> adata
    AnnData object with n_obs × n_vars = 7200 × 8192
        obs: 'genotype', 'death'
    """
    ad = _require("anndata")
    pd = _require("pandas")
    M = _codes(codes)
    n, d = M.shape
    if obs is None:
        frame = pd.DataFrame(index=pd.RangeIndex(n))
    else:
        try:
            frame = pd.DataFrame(obs).reset_index(drop=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"obs must be a pandas DataFrame or a dict of equal-length columns; {exc}") from None
        if len(frame) != n:
            raise ValueError(f"obs has {len(frame)} rows but codes has {n} cells; pass one row per cell")
    frame.index = [str(i) for i in range(n)]
    names = [f"latent_{j}" for j in range(d)] if var_names is None else [str(v) for v in var_names]
    if len(names) != d:
        raise ValueError(f"var_names has {len(names)} names but codes has {d} latents (columns); pass one per latent")
    if len(set(names)) != d:
        raise ValueError("var_names must be unique (one distinct name per latent)")
    return ad.AnnData(X=M, obs=frame, var=pd.DataFrame(index=names))


def singlecell_summary(
    codes: Any,
    obs: Any = None,
    *,
    n_pcs: int = 20,
    n_neighbors: int = 15,
    resolution: float = 1.0,
    root: Any = None,
    log1p: bool = True,
    scale: bool = True,
    neighbors_method: str = "umap",
    phate: bool = False,
    seed: int = 0,
) -> Any:
    """Clusters, cluster graph and pseudotime of codes, computed by scanpy's own tools.

    Steps, on a copy wrapped by :func:`to_anndata`:

    1. ``sc.pp.log1p`` (if ``log1p``) and ``sc.pp.scale`` (if ``scale``: each
       latent to zero mean, unit variance; constant latents become 0);
    2. ``sc.pp.pca`` with ``n_pcs`` components;
    3. ``sc.pp.neighbors`` on the PCs (``n_neighbors``, ``neighbors_method``);
    4. ``sc.tl.leiden`` with python-igraph's implementation (``flavor="igraph"``) at ``resolution``;
    5. ``sc.tl.paga`` over the Leiden clusters (connectivity between clusters;
       skipped with a warning when Leiden finds a single cluster);
    6. ``sc.tl.diffmap`` and ``sc.tl.dpt`` from ``root``: diffusion pseudotime;
    7. ``sc.external.tl.phate`` (if ``phate``; needs the ``phate`` package).

    Parameters
    ----------
    codes : array-like (n, d), scipy sparse matrix or tensor
        Cells × latents (e.g. SAE codes of images); non-negative when ``log1p``.
    obs : DataFrame or dict, optional
        Per-cell annotations, copied into ``.obs``.
    n_pcs : int
        Principal components (1 ≤ n_pcs < min(n, d)).
    n_neighbors : int
        Neighbours of the kNN graph (2 ≤ n_neighbors < n).
    resolution : float
        Leiden resolution (> 0); higher gives more, smaller clusters.
    root : int or str, optional
        The cell where pseudotime is 0: a row position or a cell name. Default:
        the cell at an extreme (the minimum) of the first non-trivial diffusion
        component — one end of the main trajectory, but which end is
        arbitrary, so pass ``root`` when the direction matters.
    log1p : bool
        Apply ``log(1 + x)`` first (codes must then be ≥ 0). Default True.
    scale : bool
        Standardise each latent before PCA. Default True.
    neighbors_method : {"umap", "gauss"}
        Connectivity kernel of ``sc.pp.neighbors``. ``"umap"`` (scanpy's
        default) compiles numba code on first use (≈ 20 s once per
        environment); ``"gauss"`` does not.
    phate : bool
        Also compute a 2-D PHATE embedding into ``.obsm["X_phate"]``. Default False.
    seed : int
        Random state of PCA, neighbours, Leiden and PHATE.

    Returns
    -------
    anndata.AnnData
        ``.obs["leiden"]`` (categorical cluster labels), ``.obs["dpt_pseudotime"]``
        (in [0, 1], 0 at the root), ``.obsm["X_pca"]``, ``.obsm["X_diffmap"]``,
        ``.obsp["connectivities"]`` / ``["distances"]`` (the kNN graph),
        ``.uns["paga"]["connectivities"]`` (clusters × clusters), ``.uns["iroot"]``
        (the root's row), ``.uns["superwidgets"]`` (the settings used), and
        ``.obsm["X_phate"]`` if ``phate``. Plot with ``sc.pl.paga``, ``sc.pl.diffmap``, ...

    Raises
    ------
    ImportError
        scanpy, anndata or python-igraph (or ``phate``, when asked for) is not installed;
        the message says what to install.
    ValueError
        Bad codes, negative codes with ``log1p``, parameters out of range, or an unknown ``root``.

    Examples
    --------
    >>> adata = singlecell_summary(codes, obs={"genotype": genotype}, resolution=0.5)  # doctest: +SKIP
    >>> adata.obs.groupby("leiden")["genotype"].value_counts()  # doctest: +SKIP
    >>> sc.pl.paga(adata)  # doctest: +SKIP
    """
    sc = _require("scanpy")
    _require("igraph")
    if phate:
        try:
            import phate as _phate  # noqa: F401
        except ImportError as exc:
            raise ImportError("phate=True needs the phate package: pip install phate") from exc
    adata = to_anndata(codes, obs)
    n, d = adata.shape
    if isinstance(n_pcs, bool) or not isinstance(n_pcs, (int, np.integer)) or not 1 <= n_pcs < min(n, d):
        raise ValueError(f"n_pcs must be an integer between 1 and min(n, d) - 1 = {min(n, d) - 1}; got {n_pcs!r}")
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)) or not 2 <= n_neighbors < n:
        raise ValueError(f"n_neighbors must be an integer between 2 and n - 1 = {n - 1}; got {n_neighbors!r}")
    if not float(resolution) > 0:
        raise ValueError(f"resolution must be positive (1.0 is scanpy's default); got {resolution!r}")
    if neighbors_method not in ("umap", "gauss"):
        raise ValueError(f"neighbors_method must be 'umap' or 'gauss'; got {neighbors_method!r}")
    iroot = None if root is None else _root_index(root, adata)
    if log1p:
        data = adata.X.data if hasattr(adata.X, "tocsr") else adata.X
        if (data < 0).any():
            raise ValueError(
                "codes has negative values, so log1p is undefined; pass log1p=False (e.g. for CNN features)"
            )
        sc.pp.log1p(adata)
    if scale:
        sc.pp.scale(adata)
    sc.pp.pca(adata, n_comps=int(n_pcs), random_state=seed)
    sc.pp.neighbors(adata, n_neighbors=int(n_neighbors), n_pcs=int(n_pcs), method=neighbors_method, random_state=seed)
    sc.tl.leiden(
        adata, resolution=float(resolution), flavor="igraph", n_iterations=2, directed=False, random_state=seed
    )
    if adata.obs["leiden"].nunique() > 1:
        sc.tl.paga(adata, groups="leiden")
    else:  # one cluster: no cluster graph to build (and scanpy's PAGA fails on a one-node graph)
        import scipy.sparse as sp

        warnings.warn(
            f"Leiden found a single cluster at resolution={resolution}; PAGA skipped (its connectivities are "
            "a 1×1 zero matrix). Raise resolution for more clusters",
            stacklevel=2,
        )
        adata.uns["paga"] = {
            "connectivities": sp.csr_matrix((1, 1)),
            "connectivities_tree": sp.csr_matrix((1, 1)),
            "groups": "leiden",
        }
    sc.tl.diffmap(adata, n_comps=min(15, n - 2))
    if iroot is None:
        # column 0 of X_diffmap is the trivial (stationary) eigenvector; column 1 is the main axis
        iroot = int(np.argmin(adata.obsm["X_diffmap"][:, 1]))
    adata.uns["iroot"] = iroot
    sc.tl.dpt(adata)
    if phate:
        sc.external.tl.phate(adata, n_components=2, random_state=seed, n_jobs=1, verbose=False)
    adata.uns["superwidgets"] = {
        "n_pcs": int(n_pcs),
        "n_neighbors": int(n_neighbors),
        "resolution": float(resolution),
        "root": iroot,
        "log1p": bool(log1p),
        "scale": bool(scale),
        "neighbors_method": neighbors_method,
        "leiden_flavor": "igraph",
        "seed": int(seed),
    }
    return adata


def _root_index(root: Any, adata: Any) -> int:
    n = adata.n_obs
    if isinstance(root, (int, np.integer)) and not isinstance(root, bool):
        if not -n <= int(root) < n:
            raise ValueError(f"root={root} is out of range for {n} cells; give a row position in 0..{n - 1}")
        return int(root) % n
    if isinstance(root, str):
        where = np.flatnonzero(adata.obs_names == root)
        if where.size == 0:
            raise ValueError(
                f"root={root!r} is not a cell name; cell names are '0'..'{n - 1}' (or pass a row position)"
            )
        return int(where[0])
    raise ValueError(f"root must be a row position (int) or a cell name (str); got {type(root).__name__}")
