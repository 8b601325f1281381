"""Where the sampler runs (CPU or GPU) and how its chains are laid out there.

CPU is the default and what CI uses; a GPU is worth it only for big programs, because NUTS is
latency-bound (one leapfrog step at a time). Measured on one H200 against its 16 CPU cores
(4 chains x 1000 warm-up + 1000 draws configured; README "GPU"): one market of 156 weeks x 7
channels sampled at 72 min-ESS/s on the GPU and 300 on the CPU; 520 x 20 at 40 against 25; 20
pooled markets x 156 x 7 at 48 against 6.6. More chains in one program is what pays on a GPU,
so there the layout trades draws per chain for chains."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from conversionflow_dagster.core.errors import ConversionflowError
from conversionflow_dagster.core.model.jax_setup import configure_jax, default_host_devices

if TYPE_CHECKING:
    import arviz as az

    from conversionflow_dagster.core.config import ModelSection

Device = Literal["cpu", "gpu"]
DEVICES = ("auto", "cpu", "gpu")
GPU_CHAINS = 16  # chains vectorised in one program on a GPU
MIN_GPU_DRAWS = 500  # per chain at least: with 250, 16 chains' R-hat missed 1.01 (pooled fit)
DRAWS_STEP = 50  # cut draws rounded up to a multiple: the sampler's chunks divide them evenly
LAYOUT_ATTR = "sampling_layout"  # trace attribute: the layout as JSON
# "auto" takes the GPU from this many markets x weeks x channels: at 1,092 (156 x 7) the GPU
# gave a quarter of 16 CPU cores' min-ESS/s, at 10,400 (520 x 20) 1.6x and at 21,840 (20
# pooled markets) 7.2x; 5,000 lies between measured sizes, not on a measured crossover.
GPU_MIN_CELLS = 5_000
_GPU_BACKENDS = ("gpu", "cuda", "rocm")


@dataclass(frozen=True)
class SamplingLayout:
    """The chains and iterations a fit runs on its device, and why (shown in the trace)."""

    device: Device
    chains: int
    draws: int  # per chain
    warmup: int  # per chain
    why: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def resolve_device(requested: str, cells: int | None = None) -> Device:
    """``auto``: the GPU when JAX has a CUDA or ROCm backend and the program has at least
    :data:`GPU_MIN_CELLS` data cells (``cells`` = markets x weeks x channels; None: any
    size), else the CPU. Starts JAX's backend, so :func:`configure_jax` must have run first
    (see :func:`prepare_sampling`)."""
    if requested not in DEVICES:
        raise ValueError(f"device {requested!r}: expected one of {DEVICES}")
    if requested == "cpu":
        return "cpu"
    import jax

    if jax.default_backend() in _GPU_BACKENDS:
        big_enough = cells is None or cells >= GPU_MIN_CELLS
        return "gpu" if requested == "gpu" or big_enough else "cpu"
    if requested == "gpu":
        forced = os.environ.get("JAX_PLATFORMS")
        raise ConversionflowError(
            "model.device is 'gpu' but JAX found only CPU devices"
            + (f" (JAX_PLATFORMS={forced})" if forced else "")
            + ": install the GPU build of JAX with `pip install -e .[gpu]` on a machine with an "
            "NVIDIA GPU and CUDA 12 drivers, or set model.device to 'auto' or 'cpu'"
        )
    return "cpu"


def sampling_layout(device: Device, chains: int, draws: int, warmup: int) -> SamplingLayout:
    """On a CPU the configured layout. On a GPU at least :data:`GPU_CHAINS` chains in one
    vectorised program, each with fewer draws so the total stays at least the configured
    total (never below :data:`MIN_GPU_DRAWS` per chain, never above the configured draws);
    the warm-up is unchanged, since every chain must adapt on its own."""
    configured = f"{chains} chains x {draws} draws"
    if device == "cpu" or chains >= GPU_CHAINS:
        where = "one program on the GPU" if device == "gpu" else "host devices of the CPU"
        return SamplingLayout(
            device, chains, draws, warmup, f"{device}: the configured {configured} ({where})"
        )
    needed = math.ceil(chains * draws / GPU_CHAINS)
    per_chain = min(draws, max(MIN_GPU_DRAWS, DRAWS_STEP * math.ceil(needed / DRAWS_STEP)))
    return SamplingLayout(
        "gpu",
        GPU_CHAINS,
        per_chain,
        warmup,
        f"gpu: {GPU_CHAINS} chains x {per_chain} draws in one vectorised program instead of "
        f"the configured {configured}: a GPU steps every chain at once, so more chains cost "
        "little time and raise ESS per second",
    )


def prepare_sampling(
    model: ModelSection, cache_dir: str | None, cells: int | None = None
) -> SamplingLayout:
    """Configure JAX for ``model.device`` before its backend starts (host devices for the
    chains; ``JAX_PLATFORMS=cpu`` for "cpu", so a GPU machine can still fit on its CPU), then
    resolve the device for a program of ``cells`` data cells and lay out the chains. Call it
    before anything touches a device."""
    configure_jax(
        default_host_devices(model.chains), cache_dir, "cpu" if model.device == "cpu" else None
    )
    device = resolve_device(model.device, cells)
    return sampling_layout(device, model.chains, model.draws, model.warmup)


def layout_metadata(idata: az.InferenceData) -> dict:
    """Run metadata of how a trace was sampled: the device (when the trace records its
    layout) and the chains and draws per chain it actually holds."""
    posterior = idata.posterior
    layout = json.loads(posterior.attrs.get(LAYOUT_ATTR, "{}"))
    return {
        **({"device": layout["device"]} if layout else {}),
        "chains": int(posterior.sizes["chain"]),
        "draws": int(posterior.sizes["draw"]),
    }
