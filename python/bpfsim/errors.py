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
#: bpf(2) cannot be used by this process (not root, EPERM, ENOSYS, not Linux): the message is
#: the one-line reason :func:`bpfsim.kernel.unavailable_reason` gives.
KernelUnavailable = _native.KernelUnavailable


class KernelDifference(Error, AssertionError):
    """A run compared with the kernel (``compare_kernel=True``) did not give the kernel's result.

    An :class:`AssertionError` as well as a :class:`bpfsim.Error`: pytest and unittest report it
    as a test failure (not an error in the test), and ``pytest.raises(AssertionError)`` catches
    it. ``e.differences`` lists each difference in words, ``e.not_comparable`` what the kernel
    cannot show, ``e.result`` is the simulator's :class:`bpfsim.Result` (None when the simulator
    refused the packet) with ``e.result.kernel`` the kernel's, ``e.kernel_error`` the kernel's
    refusal (None when it ran the packet)."""

    def __init__(self, message: str, differences=(), not_comparable=(), result=None,
                 kernel_error=None):
        super().__init__(message)
        self.differences = list(differences)
        self.not_comparable = list(not_comparable)
        self.result = result
        self.kernel_error = kernel_error


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


__all__ = ["Error", "LoadError", "PacketError", "MapError", "Trap", "VerifierError",
           "KernelUnavailable", "KernelDifference"]
