"""The exceptions bpfsim raises; all derive from :class:`Error`."""

from __future__ import annotations

from . import _native

#: Base of every bpfsim error.
Error = _native.Error
#: The object or a program cannot be loaded (bad ELF, unsupported feature, unknown program).
LoadError = _native.LoadError
#: The packet or context was refused, as the kernel's test run refuses it.
PacketError = _native.PacketError
#: A map operation failed: bad key or value size, full map, frozen map...
MapError = _native.MapError
#: The verifier rejected a program as the kernel's would: ``e.program``, ``e.error`` (the first
#: error line) and ``e.log`` (the verifier log's lines).
VerifierError = _native.VerifierError
#: The program faulted while running (memory access, instruction budget, unknown helper).
#: ``e.code``, ``e.pc`` and ``e.result`` say where and what the run had produced.
Trap = _native.Trap


def _trap(message: str, code: str, pc: int, result) -> Exception:
    e = Trap(message)
    e.code = code
    e.pc = pc
    e.result = result
    return e


def _verifier_error(program: str, error: str, log) -> Exception:
    e = VerifierError(f"{program}: {error}")
    e.program = program
    e.error = error
    e.log = list(log)
    return e


__all__ = ["Error", "LoadError", "PacketError", "MapError", "Trap", "VerifierError"]
