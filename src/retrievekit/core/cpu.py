"""What the CPU this process runs on can do fast: the instruction sets that decide which numeric path (fp32, bf16,
int8) encodes fastest, and how many physical cores the process may use.

Read from ``/proc/cpuinfo`` (Linux; elsewhere every flag reads as absent and the fp32 path is chosen) and, when torch
is installed, ``torch.backends.cpu.get_cpu_capability()`` — what torch's own kernels were dispatched to, which can be
less than the flags say (a build without AVX-512 kernels, or ATEN_CPU_CAPABILITY set lower).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")

#: the flags that matter for encoding, in the names /proc/cpuinfo uses
FEATURES = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2", "fma")


@dataclass(frozen=True)
class CPUInfo:
    """The CPU's name, its encoding-relevant flags and the cores this process may run on."""

    model: str
    flags: frozenset[str]
    physical_cores: int
    logical_cpus: int
    torch_capability: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def has(self, flag: str) -> bool:
        return flag in self.flags

    @property
    def amx(self) -> bool:
        """Intel AMX tile units with bf16 and int8 (Sapphire Rapids and later)."""
        return self.has("amx_tile") and (self.has("amx_bf16") or self.has("amx_int8"))

    @property
    def native_bf16(self) -> bool:
        """bf16 dot products in hardware (AVX512_BF16 or AMX): bf16 matmuls run faster than fp32, not emulated."""
        return self.has("avx512_bf16") or self.has("amx_bf16")

    @property
    def vnni(self) -> bool:
        """8-bit dot products (VPDPBUSD, u8 x s8 -> s32): what int8 matmul kernels need to beat fp32 clearly."""
        return self.has("avx512_vnni") or self.has("avx_vnni") or self.has("amx_int8")

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "physical_cores": self.physical_cores, "logical_cpus": self.logical_cpus,
                "features": [f for f in FEATURES if f in self.flags], "torch_capability": self.torch_capability}

    def signature(self) -> str:
        """What a cached per-CPU decision depends on: the model name, the relevant flags and the cores."""
        return (f"{self.model}|{','.join(f for f in FEATURES if f in self.flags)}|{self.physical_cores}|"
                f"{self.torch_capability}")


def _parse_cpuinfo(text: str) -> tuple[str, frozenset[str], int]:
    """(model name, flags of the first processor, number of distinct (package, core) pairs) from /proc/cpuinfo."""
    model, flags, cores = "", frozenset[str](), set()
    package = core = ""
    for line in text.splitlines() + [""]:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name" and not model:
            model = value
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
        elif key == "physical id":
            package = value
        elif key == "core id":
            core = value
        elif not key:  # a blank line ends one processor's block
            if core:
                cores.add((package, core))
            package = core = ""
    return model, flags, len(cores)


def usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def torch_capability() -> str | None:
    """torch's dispatched CPU kernel level ("AVX512", "AVX2", "DEFAULT", ...), None without torch."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except AttributeError:  # a torch older than 2.0
        return None


@functools.lru_cache(maxsize=2)
def cpu_info(*, with_torch: bool = False) -> CPUInfo:
    """This machine's CPU (cached; ``with_torch`` also asks torch, which imports it)."""
    try:
        model, flags, cores = _parse_cpuinfo(CPUINFO.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        model, flags, cores = "", frozenset(), 0
    logical = usable_cpus()
    total = os.cpu_count() or logical
    # Hyper-threads share a core's vector units: with 2 threads per core, a process allowed on N logical CPUs
    # has about N/2 cores' worth of matmul throughput.
    per_core = max(1, total // cores) if cores else 1
    physical = max(1, logical // per_core)
    return CPUInfo(model=model or platform.processor() or platform.machine(), flags=flags, physical_cores=physical,
                   logical_cpus=logical, torch_capability=torch_capability() if with_torch else None)


def physical_cores() -> int:
    """Cores this process may use, hyper-threads not counted: the intra-op thread count that keeps matmuls fed."""
    return cpu_info().physical_cores
