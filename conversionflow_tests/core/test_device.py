"""Where the sampler runs: the device chosen, the chains laid out there, and the config."""

import json
import os
import subprocess
import sys

import jax
import pytest
from pydantic import ValidationError

from conversionflow_dagster.assets.model import FitConfig
from conversionflow_dagster.core.config import ModelSection
from conversionflow_dagster.core.errors import ConversionflowError
from conversionflow_dagster.core.model.device import (
    GPU_CHAINS,
    MIN_GPU_DRAWS,
    resolve_device,
    sampling_layout,
)
from conversionflow_dagster.resources import with_overrides


def skip_on_a_gpu() -> None:
    """Asked when the test runs, not at collection: JAX's backend must not start any sooner
    than other test files expect (they set the host device count when imported)."""
    if jax.default_backend() != "cpu":
        pytest.skip("JAX has an accelerator here")


def test_cpu_keeps_the_configured_layout():
    layout = sampling_layout("cpu", 4, 1000, 1000)
    assert (layout.device, layout.chains, layout.draws, layout.warmup) == ("cpu", 4, 1000, 1000)
    assert json.loads(layout.to_json())["chains"] == 4


@pytest.mark.parametrize(
    "chains, draws", [(4, 1000), (1, 1000), (4, 100), (8, 1000), (4, 1001), (2, 300), (6, 2000)]
)
def test_gpu_runs_more_chains_and_keeps_the_total_draws(chains, draws):
    layout = sampling_layout("gpu", chains, draws, 700)
    assert layout.chains >= GPU_CHAINS
    assert layout.chains * layout.draws >= chains * draws
    assert min(draws, MIN_GPU_DRAWS) <= layout.draws <= draws
    assert layout.warmup == 700
    assert f"{chains} chains x {draws} draws" in layout.why


def test_gpu_layout_of_the_default_config():
    layout = sampling_layout("gpu", 4, 1000, 1000)
    assert (layout.chains, layout.draws, layout.warmup) == (16, 500, 1000)
    assert "vectorised" in layout.why


def test_gpu_leaves_enough_chains_alone():
    layout = sampling_layout("gpu", 32, 500, 1000)
    assert (layout.chains, layout.draws) == (32, 500)


def test_auto_is_the_cpu_without_a_gpu():
    skip_on_a_gpu()
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"


def test_auto_takes_a_gpu_only_for_a_program_big_enough(monkeypatch):
    """Small fits are latency-bound and ran 6.5x slower on a GPU: auto keeps them on the CPU."""
    import jax

    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert resolve_device("auto", cells=156 * 7) == "cpu"
    assert resolve_device("auto", cells=20 * 156 * 7) == "gpu"
    assert resolve_device("auto") == "gpu"
    assert resolve_device("gpu", cells=10) == "gpu"  # asked for: honoured at any size
    assert resolve_device("cpu", cells=10**6) == "cpu"


def test_asking_for_a_gpu_without_one_says_how_to_get_it():
    skip_on_a_gpu()
    with pytest.raises(ConversionflowError, match=r"pip install -e \.\[gpu\]") as error:
        resolve_device("gpu")
    assert "JAX found only CPU" in str(error.value)


def test_an_unknown_device_is_refused():
    with pytest.raises(ValueError, match="tpu"):
        resolve_device("tpu")


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_preparing_keeps_one_host_device_per_chain(device):
    """In a fresh process, as a fit's step has: the GPU probe starts JAX's backend, so it must
    come after the host device count is set; "cpu" forces the CPU platform, so a GPU machine
    can still fit on its CPU."""
    skip_on_a_gpu()
    script = (
        "import os, jax\n"
        "from conversionflow_dagster.core.config import ModelSection\n"
        "from conversionflow_dagster.core.model.device import prepare_sampling\n"
        f"model = ModelSection(device={device!r}, chains=3, draws=200, warmup=100)\n"
        "layout = prepare_sampling(model, None)\n"
        "print(layout.to_json())\n"
        "print(jax.default_backend(), jax.local_device_count(), os.environ.get('JAX_PLATFORMS'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    layout, probed = done.stdout.strip().splitlines()[-2:]
    shown = json.loads(layout)
    assert [shown[k] for k in ("device", "chains", "draws", "warmup")] == ["cpu", 3, 200, 100]
    platform = "cpu" if device == "cpu" else "None"
    assert probed.split() == ["cpu", "3", platform]


def test_device_config_is_validated():
    assert ModelSection().device == "auto"
    assert ModelSection(device="gpu").device == "gpu"
    with pytest.raises(ValidationError, match="device"):
        ModelSection(device="cuda")
    model = ModelSection()
    assert with_overrides(model, FitConfig()).device == "auto"
    assert with_overrides(model, FitConfig(device="cpu")).device == "cpu"
    with pytest.raises(ValidationError, match="device"):
        with_overrides(model, FitConfig(device="cuda"))
