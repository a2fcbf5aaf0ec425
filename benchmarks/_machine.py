"""Describe the machine and the library versions a benchmark ran with."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import jax


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * page_size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
            cwd=Path(__file__).resolve().parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def describe() -> dict:
    """Machine, accelerator and library versions, as a JSON-ready dict."""
    devices = jax.devices()
    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cores = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cpu_cores": usable_cores,
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [f"{d.platform}:{d.device_kind}" for d in devices],
        "versions": {
            name: _version(name)
            for name in ("gmm-jax", "jax", "jaxlib", "numpy", "scikit-learn", "gmmx")
        },
        "gmm_jax_commit": _git_commit(),
    }


def device_label(info: dict) -> str:
    """One short line naming where gmm_jax ran, e.g. ``cpu: AMD EPYC (2 cores)``."""
    if info["jax_backend"] == "cpu":
        return f"CPU: {info['cpu']} ({info['cpu_cores']} cores, {info['ram_gib']} GiB RAM)"
    return f"{info['jax_devices'][0]} (host CPU: {info['cpu']}, {info['cpu_cores']} cores)"
