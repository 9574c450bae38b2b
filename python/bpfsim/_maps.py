"""Maps as Python mappings, keys and values typed from BTF (ints, ctypes structures, bytes)."""

from __future__ import annotations

import ctypes
from collections import deque
from collections.abc import MutableMapping
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .errors import Error, MapError

ANY, NOEXIST, EXIST = 0, 1, 2

_INTS = {
    (1, False): ctypes.c_uint8, (2, False): ctypes.c_uint16,
    (4, False): ctypes.c_uint32, (8, False): ctypes.c_uint64,
    (1, True): ctypes.c_int8, (2, True): ctypes.c_int16,
    (4, True): ctypes.c_int32, (8, True): ctypes.c_int64,
}

PERCPU = {"percpu_array", "percpu_hash", "lru_percpu_hash"}
QUEUES = {"queue", "stack"}
RECORDS = {"ringbuf", "perf_event_array"}


def _plain(v):
    if isinstance(v, (ctypes.Structure, ctypes.Union)):
        return {n: _plain(getattr(v, n)) for n, _ in v._fields_ if not n.startswith("_pad")}
    if isinstance(v, ctypes.Array):
        return [_plain(x) for x in v]
    return v


def _struct_repr(self) -> str:
    fields = ", ".join(f"{k}={v!r}" for k, v in _plain(self).items())
    return f"{type(self).__name__}({fields})"


def _struct_eq(self, other) -> bool:
    if isinstance(other, (bytes, bytearray)):
        return bytes(self) == bytes(other)
    if isinstance(other, dict):
        return all(_plain(getattr(self, k)) == v for k, v in other.items())
    if isinstance(other, (ctypes.Structure, ctypes.Union)):
        return type(self) is type(other) and bytes(self) == bytes(other)
    return NotImplemented


def _struct_hash(self) -> int:
    return hash(bytes(self))


def _ctype(desc: Optional[dict]):
    """A ctypes type for a BTF description, or None where ctypes cannot say it exactly."""
    if not desc:
        return None
    kind, size = desc.get("kind"), desc.get("size")
    if kind == "int":
        return _INTS.get((size, bool(desc.get("signed"))))
    if kind == "array":
        elem = _ctype(desc["elem"])
        return elem * desc["n"] if elem is not None else None
    if kind in ("struct", "union"):
        fields, pos = [], 0
        for i, (name, offset, mdesc) in enumerate(desc["members"]):
            t = _ctype(mdesc)
            if t is None:
                return None
            name = name or f"_anon{i}"
            if kind == "struct":
                if offset < pos:
                    return None
                if offset > pos:
                    fields.append((f"_pad{i}", ctypes.c_uint8 * (offset - pos)))
                pos = offset + ctypes.sizeof(t)
            fields.append((name, t))
        if kind == "struct" and size is not None and size > pos:
            fields.append(("_pad_end", ctypes.c_uint8 * (size - pos)))
        base = ctypes.Structure if kind == "struct" else ctypes.Union
        cls = type(desc.get("name") or "anon", (base,),
                   {"_pack_": 1, "_fields_": fields, "__repr__": _struct_repr, "__eq__": _struct_eq,
                    "__hash__": _struct_hash})
        if size is not None and ctypes.sizeof(cls) != size:
            return None
        return cls
    return None


class Codec:
    """Turns Python keys/values into bytes of `size` and back, by a type: int, bytes, or a
    ctypes type (from BTF, or set by the user through ``map.key_type``/``map.value_type``)."""

    def __init__(self, size: int, desc: Optional[dict] = None, kind: Any = None):
        self.size = size
        self.signed = False
        if kind is None and desc is not None:
            if desc.get("kind") == "int" and desc.get("size") == size and size <= 8:
                kind, self.signed = int, bool(desc.get("signed"))
            elif desc.get("kind") == "array" and desc["elem"].get("kind") == "int" \
                    and desc["elem"].get("size") == 1:
                kind = bytes
            else:
                t = _ctype(desc)
                if t is not None and ctypes.sizeof(t) == size:
                    kind = t
        self.kind = kind if kind is not None else bytes

    def encode(self, v: Any, what: str) -> bytes:
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, int):
            try:
                b = v.to_bytes(self.size, "little", signed=v < 0)
            except OverflowError:
                raise MapError(f"{what} {v} does not fit in {self.size} bytes") from None
        elif isinstance(v, (bytes, bytearray, memoryview)):
            b = bytes(v)
        elif isinstance(v, dict) and isinstance(self.kind, type) and \
                issubclass(self.kind, (ctypes.Structure, ctypes.Union)):
            b = bytes(self.kind(**v))
        elif isinstance(v, (ctypes._SimpleCData, ctypes.Structure, ctypes.Union, ctypes.Array)) \
                or hasattr(v, "__bytes__"):
            b = bytes(v)
        else:
            raise MapError(f"{what} must be an int, bytes or a ctypes value, not {type(v).__name__}")
        if len(b) != self.size:
            raise MapError(f"{what} is {len(b)} bytes, the map's are {self.size}")
        return b

    def decode(self, b: bytes) -> Any:
        if self.kind is int:
            return int.from_bytes(b, "little", signed=self.signed)
        if self.kind is bytes:
            return bytes(b)
        return self.kind.from_buffer_copy(b)


class Map(MutableMapping):
    """One map of a loaded object, as a mapping (hash, array, LPM, devmap ... maps), a queue
    (queue, stack: ``push``/``pop``/``peek``) or a record source (ringbuf, perf event array:
    ``records()``/``drain()``). Per-CPU maps return one value per simulated CPU; ``sum(key)``
    adds them up."""

    def __init__(self, obj, name: str, info: tuple):
        self._obj = obj
        self._native = obj._native
        (self.name, self.type, self.key_size, self.value_size, self.max_entries,
         self.flags, key_id, value_id) = info
        self._key = Codec(self.key_size, self._native.btf_type(key_id) if key_id else None)
        self._value = Codec(self.value_size, self._native.btf_type(value_id) if value_id else None)
        if self.type == "prog_array":
            self._value.kind = int
        self._records: deque = deque()

    def __repr__(self) -> str:
        return f"<bpfsim.Map {self.name} {self.type} key {self.key_size} B value {self.value_size} B>"

    # typing
    @property
    def key_type(self):
        return self._key.kind

    @key_type.setter
    def key_type(self, t):
        self._key.kind = t

    @property
    def value_type(self):
        return self._value.kind

    @value_type.setter
    def value_type(self, t):
        self._value.kind = t

    @property
    def percpu(self) -> bool:
        return self.type in PERCPU

    # mapping protocol
    def _k(self, key) -> bytes:
        return self._key.encode(key, f"key of map {self.name}")

    def _v(self, value) -> bytes:
        if self.type == "prog_array" and hasattr(value, "_prog_id"):
            value = value._prog_id()
        return self._value.encode(value, f"value of map {self.name}")

    def __getitem__(self, key):
        vs = self._native.map_lookup(self.name, self._k(key))
        if vs is None:
            raise KeyError(key)
        if self.percpu:
            return [self._value.decode(v) for v in vs]
        return self._value.decode(vs[0])

    def __setitem__(self, key, value):
        self.set(key, value)

    def set(self, key, value, flags: int = ANY) -> None:
        """``BPF_MAP_UPDATE_ELEM`` with ``flags`` (ANY, NOEXIST, EXIST); a list sets each CPU of
        a per-CPU map, a single value every CPU."""
        if self.percpu and isinstance(value, (list, tuple)):
            values = [self._v(v) for v in value]
        else:
            values = [self._v(value)]
        self._native.map_update(self.name, self._k(key), values, flags)

    def kernel_get(self, key, default=None):
        """The value at ``key`` in the kernel's copy of this map (kernel-compat mode; the
        object is loaded into the kernel if it is not yet), decoded as ``map[key]`` is;
        ``default`` when absent."""
        vs = self._native.kernel_map_lookup(self.name, self._k(key))
        if vs is None:
            return default
        if self.percpu:
            return [self._value.decode(v) for v in vs]
        return self._value.decode(vs[0])

    def __delitem__(self, key):
        try:
            self._native.map_delete(self.name, self._k(key))
        except MapError as e:
            if "ENOENT" in str(e):
                raise KeyError(key) from None
            raise

    def __iter__(self) -> Iterator:
        if self.type in QUEUES:
            return iter(self.values_in_order())
        return iter([self._key.decode(k) for k in self._native.map_keys(self.name)])

    def __len__(self) -> int:
        if self.type in QUEUES:
            return len(self._native.map_queue_values(self.name))
        return len(self._native.map_keys(self.name))

    def clear(self) -> None:
        """Empty the map (arrays are zeroed)."""
        self._native.map_clear(self.name)
        self._records.clear()

    def sum(self, key) -> int:
        """The per-CPU values of ``key`` added up (ints)."""
        v = self[key]
        if not isinstance(v, list):
            raise Error(f"map {self.name} is not per-CPU")
        return sum(int(x) if isinstance(x, int) else int.from_bytes(bytes(x), "little") for x in v)

    # queue / stack
    def push(self, value, flags: int = ANY) -> None:
        self._native.map_push(self.name, self._v(value), flags)

    def pop(self, *default):
        if self.type not in QUEUES:
            return super().pop(*default)
        return self._value.decode(self._native.map_pop(self.name))

    def peek(self):
        return self._value.decode(self._native.map_peek(self.name))

    def values_in_order(self) -> List[Any]:
        """A queue's or stack's values, oldest first."""
        return [self._value.decode(v) for v in self._native.map_queue_values(self.name)]

    # ring buffers and perf event arrays
    def records(self) -> List[bytes]:
        """Records the programs sent through this ring buffer / perf event array and nobody has
        drained yet."""
        return [r for _, r in self._records]

    def drain(self) -> List[bytes]:
        """Records not read yet, removed from the reader (like a user-space consumer)."""
        out = [r for _, r in self._records]
        self._records.clear()
        return out


class Maps(dict):
    """The object's maps by name."""

    def __missing__(self, name):
        raise KeyError(f"the object has no map {name!r}; it has {sorted(self)}")


class Globals(MutableMapping):
    """The variables of a global data section by name (``obj.rodata``, ``obj.data``,
    ``obj.bss``), typed from BTF. ``.rodata`` can be written until the first run, as a libbpf
    skeleton's between open and load; then the kernel (and bpfsim) freeze it."""

    def __init__(self, obj, section: str):
        self._obj = obj
        self._section = section
        self._vars: Dict[str, Tuple[int, int, Codec]] = {}
        for name, off, size, type_id in obj._native.global_vars(section):
            self._vars[name] = (off, size, Codec(size, obj._native.btf_type(type_id)))

    def _whole(self) -> bytes:
        vs = self._obj._native.map_lookup(self._section, b"\0\0\0\0")
        if vs is None:
            raise Error(f"the object has no {self._section} section")
        return vs[0]

    def _var(self, name):
        try:
            return self._vars[name]
        except KeyError:
            raise KeyError(f"no variable {name!r} in {self._section}; it has {sorted(self._vars)}") from None

    def __getitem__(self, name):
        off, size, codec = self._var(name)
        return codec.decode(self._whole()[off:off + size])

    def __setitem__(self, name, value):
        off, size, codec = self._var(name)
        if self._section.startswith(".rodata") and not self._obj._native.rodata_writable():
            raise Error(f"{self._section} is frozen: a program has run (set it right after load)")
        whole = bytearray(self._whole())
        whole[off:off + size] = codec.encode(value, f"{self._section} variable {name}")
        self._obj._native.map_update(self._section, b"\0\0\0\0", [bytes(whole)], 0)

    def __delitem__(self, name):
        raise Error("global variables cannot be deleted")

    def __iter__(self):
        return iter(self._vars)

    def __len__(self):
        return len(self._vars)

    def __repr__(self):
        return f"<bpfsim.Globals {self._section}: {sorted(self._vars)}>"
