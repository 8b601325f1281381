"""Where a project's files and caches live, from the environment."""

from conversionflow_dagster import settings


def test_the_jax_cache_is_the_projects_unless_jax_is_told_another(tmp_path, monkeypatch):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    assert settings.jax_cache_dir(tmp_path) == tmp_path / "storage" / "jax_cache"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "shared"))
    assert settings.jax_cache_dir(tmp_path) == tmp_path / "shared"  # JAX's own variable wins
