"""The verifier from Python: load(..., verify=True) and prog.verify()."""

import pytest

import bpfsim


def test_every_vector_program_verifies(vectors):
    for path in sorted(vectors.glob("*.bpf.o")):
        obj = bpfsim.load(path, verify=True)
        for name, prog in obj.programs.items():
            v = prog.verify()
            assert v.accepted and v.error is None, (path.name, name, v.error)
            assert v.processed > 0 and v.log[-1].startswith("processed ")


def test_a_rejected_program_raises_with_the_log(vectors):
    objects = vectors.parent / "verifier" / "objects"
    with pytest.raises(bpfsim.VerifierError) as e:
        bpfsim.load(objects / "reject_null_deref.bpf.o", verify=True)
    assert e.value.program == "xdp_count_unchecked"
    assert e.value.error == "R0 invalid mem access 'map_value_or_null'"
    assert e.value.log[-1].startswith("processed ")
    # Without verify=True it loads (and runs, memory-safely); verify() gives the verdict.
    obj = bpfsim.load(objects / "reject_pkt_oob.bpf.o")
    v = obj["xdp_read_past_check"].verify()
    assert not v and v.error == "R1 offset is outside of the packet"
    assert obj["xdp_read_past_check"].run(bytes(60)).action == bpfsim.XdpAction.PASS


def test_verdict_for_text_function(vectors):
    calls = bpfsim.load(vectors / "bpf2bpf_calls.bpf.o")
    # port_policy(u16 port) run as XDP gets the context in r1 and shifts it: the kernel says
    # (checked with `bpfsim verify --compare-kernel`) as we do.
    v = calls.program("port_policy", type="xdp").verify()
    assert isinstance(v, bpfsim.Verdict)
    assert not v and v.error == "R1 pointer arithmetic with <<= operator prohibited"


def test_verifier_error_is_a_load_error():
    assert issubclass(bpfsim.VerifierError, bpfsim.LoadError)
    assert issubclass(bpfsim.VerifierError, bpfsim.Error)
