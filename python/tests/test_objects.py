"""Loading objects, programs, errors."""

import os
import platform

import pytest

import bpfsim


def test_load_from_path_and_bytes(vectors):
    obj = bpfsim.load(vectors / "xdp_book_9090.bpf.o")
    assert obj.program_names == ["xdp_tcp_9090"]
    p = obj["xdp_tcp_9090"]
    assert (p.name, p.type, p.section) == ("xdp_tcp_9090", "xdp", "xdp")
    assert p.insn_count > 10
    assert p is obj.program("xdp_tcp_9090"), "programs are linked once"
    assert "exit" in p.disasm()
    assert "exit" in p.disasm("conformance")
    jit = p.disasm(jit=True)
    # Every instruction of the plain listing, in order, each followed by its host code.
    plain = [line for line in p.disasm().splitlines() if not line.startswith(";")]
    assert [line for line in jit.splitlines() if line[:1].isdigit()] == plain
    assert "bytes of " in jit.splitlines()[-1]
    if platform.machine() in ("x86_64", "AMD64"):
        base = p.disasm(jit=True, baseline=True)
        assert [line for line in base.splitlines() if line[:1].isdigit()] == plain
        assert base != jit, "the baseline tier's code is its own"
    with pytest.raises(bpfsim.Error, match="jit=True"):
        p.disasm(baseline=True)
    same = bpfsim.load((vectors / "xdp_book_9090.bpf.o").read_bytes())
    assert same.program_names == obj.program_names


def test_several_programs_and_text_functions(vectors):
    obj = bpfsim.load(vectors / "tail_calls.bpf.o")
    assert set(obj.programs) >= {"xdp_dispatch", "handle_ipv4", "handle_icmp"}
    calls = bpfsim.load(vectors / "bpf2bpf_calls.bpf.o")
    # A global function in .text, run as a program of the type we name.
    with pytest.raises(bpfsim.LoadError, match="type"):
        calls.program("port_policy")
    assert calls.program("port_policy", type="xdp").type == "xdp"


def test_load_errors_say_what_and_where(tmp_path, vectors):
    with pytest.raises(bpfsim.LoadError, match="nope.o"):
        bpfsim.load(tmp_path / "nope.o")
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"\x7fELF" + b"\x01" * 60)
    with pytest.raises(bpfsim.LoadError, match="junk.o"):
        bpfsim.load(junk)
    obj = bpfsim.load(vectors / "xdp_pass.bpf.o")
    with pytest.raises(bpfsim.LoadError, match="no_such_prog"):
        obj["no_such_prog"]
    with pytest.raises(bpfsim.LoadError, match="unknown program type"):
        obj.program("xdp_pass_count", type="frobnicate")
    assert issubclass(bpfsim.LoadError, bpfsim.Error)
    assert issubclass(bpfsim.Trap, bpfsim.Error)


def test_core_programs_take_the_kernel_btf_given(vectors):
    """CO-RE relocations need the kernel's BTF: a missing file is named in the program's error;
    with this machine's BTF (if it has one) the program links."""
    core = vectors / ".." / "loader" / "core.bpf.o"
    try:
        obj = bpfsim.load(core, btf="/nonexistent/vmlinux")
        with pytest.raises(bpfsim.LoadError, match="needs the kernel's BTF: cannot read /nonexistent/vmlinux"):
            obj.program("read_pid")
    finally:
        bpfsim._native.set_kernel_btf(None)
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("no /sys/kernel/btf/vmlinux")
    p = bpfsim.load(core).program("read_pid")
    assert p.type == "kprobe"


def test_jit_listing_of_a_rejected_program_is_a_load_error(vectors):
    obj = bpfsim.load(vectors.parent / "verifier" / "objects" / "reject_pkt_oob.bpf.o")
    p = obj[obj.program_names[0]]
    assert "exit" in p.disasm(), "the plain listing still works"
    with pytest.raises(bpfsim.LoadError, match="the verifier rejects it"):
        p.disasm(jit=True)
