"""Objects, programs, runs."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from . import _native
from ._ctx import Redirect, SkBuff, TcAction, XdpAction, XdpMd, XdpMdOut
from ._env import Env
from ._maps import RECORDS, Globals, Map, Maps
from .errors import (Error, KernelDifference, LoadError, PacketError, _trap,
                     _verifier_error)

PathLike = Union[str, "os.PathLike[str]"]
Packet = Union[bytes, bytearray, memoryview, Any]

ENGINES = ("interp", "jit", "auto", "baseline")


def _to_bytes(packet: Packet) -> bytes:
    if isinstance(packet, bytes):
        return packet
    if isinstance(packet, (bytearray, memoryview)):
        return bytes(packet)
    if hasattr(packet, "__bytes__"):
        return bytes(packet)
    raise PacketError(f"a packet must be bytes, bytearray, memoryview or have __bytes__ "
                      f"(scapy, dpkt), not {type(packet).__name__}")


def _action(prog_type: str, retval: int):
    r32 = retval & 0xFFFFFFFF
    if prog_type == "xdp":
        try:
            return XdpAction(r32)
        except ValueError:
            return r32
    if prog_type in ("sched_cls", "sched_act"):
        signed = r32 - (1 << 32) if r32 >= 1 << 31 else r32
        try:
            return TcAction(signed)
        except ValueError:
            return signed
    return r32


class Result:
    """What one run produced.

    ``action``: an :class:`XdpAction`/:class:`TcAction` (or the bytes kept, for socket
    filters); ``data``: the packet afterwards; ``ctx``: the context afterwards; ``redirect``;
    ``trace`` (bpf_printk lines); ``events`` (ring buffer / perf records); ``insns``;
    ``duration_ns``; ``tail_calls`` (programs entered, in order).

    After ``run(..., compare_kernel=True)``: ``kernel`` (the kernel's result, the same
    attributes; ``insns`` 0, ``redirect`` None and ``tail_calls`` empty, as the kernel does not
    report them), ``kernel_error`` (the kernel's refusal of the packet, else None),
    ``differences`` (each in words, the maps afterwards included; empty when both agree) and
    ``not_comparable`` (what the simulator reported that the kernel cannot show). Without a
    comparison they are None.
    """

    __slots__ = ("_r", "_type", "_cmp")

    def __init__(self, native_result, prog_type: str, comparison=None):
        self._r = native_result
        self._type = prog_type
        self._cmp = comparison

    @property
    def retval(self) -> int:
        """The program's return value as the kernel reports it (low 32 bits of r0)."""
        return self._r.retval & 0xFFFFFFFF

    @property
    def r0(self) -> int:
        return self._r.retval

    @property
    def action(self):
        return _action(self._type, self._r.retval)

    @property
    def data(self) -> bytes:
        return self._r.data

    @property
    def ctx(self):
        raw = self._r.ctx_out
        if self._type == "xdp":
            return XdpMdOut._from_bytes(raw)
        return SkBuff._from_bytes(raw)

    @property
    def redirect(self) -> Optional[Redirect]:
        r = self._r.redirect
        if r is None:
            return None
        if r[0] == "ifindex":
            return Redirect(ifindex=r[1], flags=r[2], kind="ifindex")
        return Redirect(map=r[1], key=r[2], flags=r[3], kind="map")

    @property
    def trace(self) -> List[str]:
        return self._r.trace

    @property
    def events(self) -> List[tuple]:
        """``(map name, cpu or None, bytes)`` per record."""
        return self._r.events

    @property
    def insns(self) -> int:
        return self._r.insns

    @property
    def duration_ns(self) -> int:
        return self._r.duration_ns

    @property
    def tail_calls(self) -> List[str]:
        return self._r.tail_calls

    @property
    def kernel(self) -> Optional["Result"]:
        """The kernel's result of the same run (None without a comparison, or when the kernel
        refused the packet: see ``kernel_error``)."""
        return self._cmp[0] if self._cmp else None

    @property
    def kernel_error(self) -> Optional[str]:
        return self._cmp[1] if self._cmp else None

    @property
    def differences(self) -> Optional[List[str]]:
        return self._cmp[2] if self._cmp else None

    @property
    def not_comparable(self) -> Optional[List[str]]:
        return self._cmp[3] if self._cmp else None

    def __repr__(self) -> str:
        a = self.action
        name = a.name if hasattr(a, "name") else a
        cmp = ""
        if self._cmp is not None:
            n = len(self._cmp[2])
            cmp = ", agrees with the kernel" if n == 0 else f", {n} differences with the kernel"
        return f"<bpfsim.Result {name} {len(self.data)} bytes, {self.insns} insns{cmp}>"


class PcapRun:
    """A capture replayed: ``counts`` (verdict -> packets), ``retvals`` in packet order,
    ``refused`` ((index, reason) of packets the run refused), ``written`` (packets in ``out``),
    ``seconds``, ``pps``, and ``results`` when asked for with ``keep_results=True``."""

    def __init__(self, native, prog_type: str):
        self._n = native
        self._type = prog_type
        self.counts: Dict[Any, int] = {_action(prog_type, r): n for r, n in native.counts}
        self.refused: List[tuple] = native.refused
        self.packets: int = native.packets
        self.written: int = native.written
        self.seconds: float = native.seconds
        #: Time inside the program runs; the rest of ``seconds`` is capture and output handling.
        self.run_seconds: float = native.run_seconds

    @property
    def retvals(self) -> List[int]:
        return [r & 0xFFFFFFFF for r in self._n.retvals]

    @property
    def actions(self) -> list:
        return [_action(self._type, r) for r in self._n.retvals]

    @property
    def results(self) -> List[Result]:
        return [Result(r, self._type) for r in self._n.results]

    @property
    def pps(self) -> float:
        return self.packets / self.seconds if self.seconds > 0 else float("inf")

    def __repr__(self) -> str:
        counts = {getattr(k, "name", k): v for k, v in self.counts.items()}
        return f"<bpfsim.PcapRun {self.packets} packets {counts}>"


class PcapComparison:
    """A capture replayed in the simulator and in the kernel (``run_pcap(...,
    compare_kernel=True)``): ``packets``; ``agreed`` (packets on which the two agree, both
    refusing included); ``differences`` ({packet index: [each difference in words]});
    ``not_comparable`` ({packet index: [...]}, where not empty); ``refused`` ((index, reason)
    of packets both refused); the simulator's ``counts``, ``retvals`` and ``actions``, the
    kernel's ``kernel_retvals`` (None where it refused); ``results`` with
    ``keep_results=True``; ``seconds``."""

    def __init__(self, prog_type: str):
        self._type = prog_type
        self.packets = 0
        self.agreed = 0
        self.differences: Dict[int, List[str]] = {}
        self.not_comparable: Dict[int, List[str]] = {}
        self.refused: List[tuple] = []
        self.retvals: List[Optional[int]] = []
        self.kernel_retvals: List[Optional[int]] = []
        self.results: List[Result] = []
        self.seconds = 0.0

    @property
    def actions(self) -> list:
        return [None if r is None else _action(self._type, r) for r in self.retvals]

    @property
    def counts(self) -> Dict[Any, int]:
        out: Dict[Any, int] = {}
        for a in self.actions:
            if a is not None:
                out[a] = out.get(a, 0) + 1
        return out

    def __repr__(self) -> str:
        return (f"<bpfsim.PcapComparison {self.agreed}/{self.packets} packets agree with the "
                f"kernel>")


class Verdict:
    """The verifier's answer for one program: ``accepted``, ``error`` (the first error line, as
    the kernel's log would end), ``processed`` (instructions explored), ``log`` (lines),
    ``time_us``."""

    __slots__ = ("accepted", "error", "processed", "log", "time_us")

    def __init__(self, accepted, error, processed, log, time_us):
        self.accepted, self.error, self.processed = accepted, error, processed
        self.log, self.time_us = log, time_us

    def __bool__(self) -> bool:
        return self.accepted

    def __repr__(self) -> str:
        what = "accepted" if self.accepted else f"rejected: {self.error}"
        return f"<bpfsim.Verdict {what}, {self.processed} insns processed>"


class Program:
    """A program of a loaded object, linked and ready to run against the object's maps."""

    def __init__(self, obj: "Object", name: str, prog_type: Optional[str]):
        self._obj = obj
        self._native = obj._native
        self._handle, self.type, self.section, self.insn_count = self._native.link(name, prog_type)
        self.name = name
        self._type_given = prog_type is not None

    def __repr__(self) -> str:
        return f"<bpfsim.Program {self.name} ({self.type}, section {self.section}, {self.insn_count} insns)>"

    def verify(self, log_level: int = 1) -> Verdict:
        """Run the verifier on this program as the kernel would load it."""
        explicit = self._type_given
        return Verdict(*self._native.verify(self.name, self.type if explicit else None, log_level))

    def disasm(self, style: str = "kernel", jit: bool = False, baseline: bool = False) -> str:
        """The program as linked: ``style`` "kernel" (verifier-log notation) or "conformance".

        With ``jit=True``, the code the JIT generates for it instead (verified and compiled with
        the verifier's hints, as ``engine="jit"`` runs it): each instruction followed by the host
        instructions generated for it, as ``bpfsim disasm --jit`` prints it; with
        ``baseline=True`` too, the baseline tier's code (``engine="baseline"``, x86-64 only), as
        ``bpfsim disasm --jit --baseline`` prints it. Raises :class:`LoadError` when the
        verifier rejects the program or the JIT cannot compile it.
        """
        if baseline and not jit:
            raise Error("baseline=True lists the JIT's code: add jit=True")
        if jit:
            if baseline:
                return self._native.disasm_jit(self._handle, style, True)
            return self._native.disasm_jit(self._handle, style)
        return self._native.disasm(self._handle, style)

    def _prog_id(self) -> int:
        return self._native.prog_id(self.name)

    def _ctx_args(self, data: bytes, ctx):
        if ctx is None:
            return data, (1, 0, 0), None
        if isinstance(ctx, XdpMd):
            if self.type != "xdp":
                raise PacketError(f"an XdpMd context for a {self.type} program")
            return (ctx.meta + data if ctx.meta else data), ctx._native(), None
        if isinstance(ctx, SkBuff):
            if self.type == "xdp":
                raise PacketError("an SkBuff context for an XDP program")
            return data, (1, 0, 0), ctx._native()
        raise PacketError(f"ctx must be XdpMd or SkBuff, not {type(ctx).__name__}")

    def run(self, packet: Packet, ctx=None, engine: str = "interp", repeat: int = 1,
            compare_kernel: bool = False, raise_on_difference: bool = True) -> Result:
        """Run once (``repeat`` times, maps persisting, as BPF_PROG_TEST_RUN) on ``packet``.

        ``engine``: "interp" (the reference), "jit" (compiled with Cranelift on first use; an
        error for programs it cannot compile yet), or "auto" (interpreted until hot, then
        compiled in the background while the interpreter goes on; interpreted throughout if it
        cannot be compiled), or "baseline" (the JIT's baseline tier: compiled in one pass,
        about 30 times faster to compile than "jit" and slower to run; x86-64 only).

        ``compare_kernel=True``: run the same packet in the live kernel too (the object is
        loaded there on first use with the simulator's maps as they are; from then on every map
        write from Python is made on both sides, and each side's maps carry over from run to
        run) and compare the verdict, output packet, context out, ring buffer records,
        bpf_printk lines and, afterwards, the maps. The result then has ``kernel``,
        ``differences`` and ``not_comparable``. A difference raises
        :class:`bpfsim.KernelDifference` (an AssertionError) unless ``raise_on_difference`` is
        False. :class:`bpfsim.KernelUnavailable` when bpf(2) cannot be used here.

        Raises :class:`bpfsim.Trap` if the program faults, :class:`bpfsim.PacketError` if the
        packet or context is refused as the kernel would refuse it."""
        if engine not in ENGINES:
            raise Error(f"engine {engine!r} is not available: this build has {ENGINES}")
        if self._obj.backend == "kernel":
            self._kernel_backend_check(engine, compare_kernel)
        data = packet if type(packet) is bytes else _to_bytes(packet)
        if compare_kernel:
            return self._run_compare(data, ctx, engine, repeat, raise_on_difference)
        if ctx is None:
            # By position, defaults left out: keyword arguments cost the extension call about
            # as much as a short test run.
            if repeat == 1 and engine == "interp":
                r = self._native.run(self._handle, data)
            else:
                r = self._native.run(self._handle, data, None, None, repeat, engine)
        else:
            data, xdp, skb = self._ctx_args(data, ctx)
            r = self._native.run(self._handle, data, xdp, skb, repeat, engine)
        res = Result(r, self.type)
        if r.events:
            self._obj._collect(r.events)
        trap = r.trap
        if trap is not None:
            raise _trap(f"{self.name}: {trap[3]}", trap[0], trap[1], res)
        return res

    def _kernel_backend_check(self, engine: str, compare_kernel: bool) -> None:
        if compare_kernel:
            raise Error("compare_kernel=True compares the simulator with the kernel: load with "
                        "backend='sim' (the default)")
        if engine != "interp":
            raise Error(f"engine={engine!r} is the simulator's; backend='kernel' runs in "
                        "the kernel")

    def _run_compare(self, data: bytes, ctx, engine: str, repeat: int, raise_on_difference: bool):
        xdp, skb = (1, 0, 0), None
        if ctx is not None:
            data, xdp, skb = self._ctx_args(data, ctx)
        sim, sim_err, kern, kern_err, diffs, not_cmp = self._native.run_compare(
            self._handle, data, xdp, skb, repeat, engine)
        kres = Result(kern, self.type) if kern is not None else None
        res = Result(sim, self.type, (kres, kern_err, diffs, not_cmp)) if sim is not None else None
        if diffs and raise_on_difference:
            shown = "\n  ".join(diffs)
            raise KernelDifference(f"{self.name}: the kernel differs:\n  {shown}", diffs, not_cmp,
                                   res, kern_err)
        if res is None:
            # The simulator refused it: its refusal, with the kernel's side next to it (both
            # refused, or the kernel ran it and raise_on_difference is off).
            e = PacketError(sim_err)
            e.kernel = kres
            e.kernel_error = kern_err
            e.differences = diffs
            raise e
        if sim.events:
            self._obj._collect(sim.events)
        trap = sim.trap
        if trap is not None:
            raise _trap(f"{self.name}: {trap[3]}", trap[0], trap[1], res)
        return res

    def _run_pcap_compare(self, path, ctx, keep: bool, engine: str, raise_on_difference: bool):
        import time

        started = time.perf_counter()
        c = PcapComparison(self.type)
        for i, pkt in enumerate(_native.read_packets(os.fspath(path))):
            c.packets += 1
            try:
                res = self._run_compare(pkt, ctx, engine, 1, False)
            except PacketError as e:
                if not hasattr(e, "differences"):
                    raise  # refused before either side ran it (a bad context)
                c.retvals.append(None)
                c.kernel_retvals.append(e.kernel.retval if e.kernel is not None else None)
                if e.differences:
                    c.differences[i] = e.differences
                else:
                    c.refused.append((i, str(e)))
                    c.agreed += 1
                continue
            except Error as e:
                if not hasattr(e, "result") or e.result is None or e.result.differences is None:
                    raise
                res = e.result  # a trap: its comparison is still there
            c.retvals.append(res.retval)
            c.kernel_retvals.append(res.kernel.retval if res.kernel is not None else None)
            if res.differences:
                c.differences[i] = res.differences
            else:
                c.agreed += 1
            if res.not_comparable:
                c.not_comparable[i] = res.not_comparable
            if keep:
                c.results.append(res)
        c.seconds = time.perf_counter() - started
        if c.differences and raise_on_difference:
            lines = [f"packet {i}: {d}" for i, ds in c.differences.items() for d in ds]
            more = [f"... {len(lines) - 20} more"] if len(lines) > 20 else []
            shown = "\n  ".join(lines[:20] + more)
            e = KernelDifference(f"{self.name}: the kernel differs on {len(c.differences)} of "
                                 f"{c.packets} packets:\n  {shown}", lines)
            e.run = c
            raise e
        return c

    def run_pcap(self, path: PathLike, out: Optional[PathLike] = None,
                 only: Optional[Iterable[str]] = None, ctx=None, keep_results: bool = False,
                 progress: Optional[bool] = None, engine: str = "interp",
                 compare_kernel: bool = False, raise_on_difference: bool = True):
        """Replay a pcap or pcapng file, streaming, maps persisting across packets.

        ``out``: write the resulting packets to a pcapng file (those whose verdict is in
        ``only``, e.g. ``("tx", "redirect")``; all by default), each with its direction and a
        comment naming the verdict. ``progress``: a packet counter on stderr (default: when
        stderr is a terminal).

        ``compare_kernel=True``: every packet runs in the live kernel too, as
        ``run(..., compare_kernel=True)`` runs it (maps carrying over on both sides), and a
        :class:`PcapComparison` comes back; any difference raises
        :class:`bpfsim.KernelDifference` after the last packet, listing them by packet index
        (``e.run`` is the comparison), unless ``raise_on_difference`` is False. ``out`` is not
        available then."""
        if self._obj.backend == "kernel":
            self._kernel_backend_check(engine, compare_kernel)
        if compare_kernel:
            if out is not None:
                raise Error("out= is not available with compare_kernel=True")
            return self._run_pcap_compare(path, ctx, keep_results, engine, raise_on_difference)
        xdp, skb = (1, 0, 0), None
        if ctx is not None:
            _, xdp, skb = self._ctx_args(b"", ctx)
        n = self._native.run_pcap(self._handle, os.fspath(path),
                                  os.fspath(out) if out is not None else None,
                                  [str(o) for o in (only or ())], xdp, skb, progress,
                                  keep_results, engine)
        return PcapRun(n, self.type)


BACKENDS = ("sim", "kernel")


class Object:
    """An ELF object loaded into the simulator: its maps created, global data set, programs
    ready to link. Map state persists across runs of all its programs.

    With ``backend="kernel"`` the programs run in the live kernel instead (loaded there before
    the first run, with the maps and ``.rodata`` as Python set them), and maps are read from and
    written to the kernel's; results have no instruction count, trap or redirect target (the
    kernel does not report them), and helpers cannot be mocked."""

    def __init__(self, data: bytes, env: Optional[Env] = None, name: str = "<bytes>",
                 backend: str = "sim"):
        env = env or Env()
        if backend not in BACKENDS:
            raise Error(f"backend {backend!r} is not one of {BACKENDS}")
        self.name = name
        #: "sim" or "kernel": where the programs run.
        self.backend = backend
        self._native = _native.Object(data, env.ncpus, env.cpu,
                                      (env.clock.start_ns, env.clock.step_ns), env.seed,
                                      backend == "kernel")
        self._env = env
        self._programs: Dict[tuple, Program] = {}
        self.maps = Maps()
        for info in self._native.maps():
            self.maps[info[0]] = Map(self, info[0], info)
        self._globals: Dict[str, Globals] = {}

    def __repr__(self) -> str:
        return f"<bpfsim.Object {self.name}: programs {self.program_names}, maps {sorted(self.maps)}>"

    @property
    def program_names(self) -> List[str]:
        return [p[0] for p in self._native.programs()]

    @property
    def programs(self) -> Dict[str, Program]:
        """Every program with a type (from its section), by function name."""
        return {p[0]: self.program(p[0]) for p in self._native.programs() if p[2] is not None}

    def program(self, name: str, type: Optional[str] = None) -> Program:  # noqa: A002
        """Program ``name`` (a function name); ``type`` (xdp, sched_cls, socket_filter, ...)
        for a program whose section does not say it, e.g. one in ``.text``."""
        key = (name, type)
        p = self._programs.get(key)
        if p is None:
            p = self._programs[key] = Program(self, name, type)
        return p

    def __getitem__(self, name: str) -> Program:
        return self.program(name)

    def globals(self, section: str) -> Globals:
        g = self._globals.get(section)
        if g is None:
            g = self._globals[section] = Globals(self, section)
        return g

    @property
    def rodata(self) -> Globals:
        return self.globals(".rodata")

    @property
    def data(self) -> Globals:
        return self.globals(".data")

    @property
    def bss(self) -> Globals:
        return self.globals(".bss")

    @property
    def env(self) -> Env:
        return self._env

    @env.setter
    def env(self, env: Env) -> None:
        if env.ncpus != self._env.ncpus:
            raise Error(f"ncpus is fixed at load ({self._env.ncpus}): per-CPU maps are sized by it")
        self._native.set_env(env.cpu, (env.clock.start_ns, env.clock.step_ns), env.seed)
        self._env = env

    # kernel-compat mode
    def attach_kernel(self) -> None:
        """Load this object into the live kernel now, with the maps as they are here (done by
        the first ``run(..., compare_kernel=True)`` otherwise). From then on map writes from
        Python are made on both sides and ``.rodata`` is frozen, as the kernel freezes it.
        Raises :class:`bpfsim.KernelUnavailable` with the reason when bpf(2) cannot be used,
        :class:`bpfsim.Error` for state the kernel cannot be given (per-CPU maps need
        ``Env(ncpus=bpfsim.kernel.possible_cpus())``; queue, stack and XSKMAP contents)."""
        self._native.kernel_attach()

    @property
    def kernel_attached(self) -> bool:
        return self._native.kernel_attached()

    def kernel_ignore_map_bytes(self, map: str, start: int, end: int) -> None:  # noqa: A002
        """Leave value bytes ``start:end`` of ``map`` out of the map comparisons: what holds
        kernel time (``bpf_ktime_get_ns``) or random numbers."""
        self._native.kernel_ignore(map, start, end)

    def kernel_map_differences(self) -> List[str]:
        """Every map entry that differs between the simulator and the kernel now, in words."""
        return self._native.kernel_map_differences()

    def mock_helper(self, helper: Union[str, int], fn) -> None:
        """Replace a helper (``"bpf_fib_lookup"``, ``"fib_lookup"`` or its id) with ``fn(call)``:
        ``call.args`` are r1..r5, ``call.read(addr, n)``/``call.write(addr, data)`` reach the
        program's memory during the call; the return value is r0. An exception in ``fn`` stops
        the run and is raised from ``run()``. In comparisons with the kernel the helper is named
        in ``not_comparable``: the kernel runs the real one."""
        self._native.mock_helper(self._helper_id(helper), fn)

    def restore_helper(self, helper: Union[str, int]) -> None:
        self._native.restore_helper(self._helper_id(helper))

    @staticmethod
    def _helper_id(helper: Union[str, int]) -> int:
        if isinstance(helper, int):
            return helper
        hid = _native.helper_id(helper)
        if hid is None:
            raise Error(f"no helper named {helper!r}")
        return hid

    def _collect(self, events: Sequence[tuple]) -> None:
        for name, cpu, data in events:
            m = self.maps.get(name)
            if m is not None and m.type in RECORDS:
                m._records.append((cpu, data))


def _verified(obj: Object) -> Object:
    for name in obj.program_names:
        p = obj.program(name)
        v = p.verify()
        if not v.accepted:
            raise _verifier_error(name, v.error, v.log)
    return obj


def load(source: Union[PathLike, bytes, bytearray, memoryview], env: Optional[Env] = None,
         verify: bool = False, backend: str = "sim", btf: Optional[PathLike] = None) -> Object:
    """Load an ELF object (``clang -O2 -g -target bpf``) from a path or from its bytes.

    CO-RE relocations, tracing attach targets and kfunc calls are resolved against the kernel's
    BTF: ``/sys/kernel/btf/vmlinux``, or the raw BTF file ``btf`` names (another machine's
    vmlinux BTF). ``btf`` stays the kernel BTF of later loads in this process too (the kernel
    backend loads the object again when it first runs it).

    ``verify=True`` runs the verifier on every program first and raises
    :class:`bpfsim.VerifierError` for the first one the kernel would reject.

    ``backend="kernel"``: the same API, the programs run in the live kernel (root; a run raises
    :class:`bpfsim.KernelUnavailable` with the reason where bpf(2) cannot be used, and
    :class:`bpfsim.LoadError` with the verifier's reason if the kernel refuses the object)."""
    if btf is not None:
        _native.set_kernel_btf(os.fspath(btf))
    if isinstance(source, (bytes, bytearray, memoryview)):
        obj = Object(bytes(source), env, backend=backend)
        return _verified(obj) if verify else obj
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise LoadError(f"{path}: {e.strerror or e}") from None
    try:
        obj = Object(data, env, name=path, backend=backend)
    except LoadError as e:
        raise LoadError(f"{path}: {e}") from None
    return _verified(obj) if verify else obj
