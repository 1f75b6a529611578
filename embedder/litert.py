"""The served network as a LiteRT (TensorFlow Lite) flatbuffer.

On a CPU, a forward pass of the small embedding network through TensorFlow
costs mostly per-op dispatch; LiteRT's XNNPACK kernels run the same graph
several times faster (docs/BENCHMARKS.md) and need no TensorFlow at serving
time. The file is written by ``trainer.export`` from the Keras weights and
hashed in the manifest like them; its outputs match the Keras model's to
float32 rounding (tests/test_training.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from likeness.errors import FailedPrecondition

#: A call of N inputs runs as chunks of 16, then one chunk per set bit of the
#: rest (13 = 8 + 4 + 1): five interpreters of fixed sizes 1-16, built up
#: front, serve every N with neither padding nor re-planning the graph when N
#: changes. Measured on 2 cores (AVX2, one thread): about 0.55 ms per input
#: in chunks of 1-16, 0.67-0.84 ms in chunks of 32-128.
_MAX_CHUNK = 16


def _sizes() -> list[int]:
    return [1 << k for k in range(_MAX_CHUNK.bit_length())]


def _chunks(n: int) -> list[int]:
    """Chunk sizes, largest first, that sum to ``n``."""
    rest = n % _MAX_CHUNK
    return [_MAX_CHUNK] * (n // _MAX_CHUNK) + [s for s in reversed(_sizes()) if rest & s]


class LiteRTModel:
    """Runs a ``.tflite`` embedding network with inputs "image" (N, S, S, 3)
    float32 0-255 and "landmarks" (N, 136) float32 in [-1, 1]; returns its
    (N, dim) output. ``threads``: kernel threads per call; 0 = LiteRT's
    default. Thread-safe: chunks of one size are serialised. Raises
    FailedPrecondition when the file takes other inputs."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        from ai_edge_litert.interpreter import Interpreter

        content = path.read_bytes()
        self._by_size: dict[int, _Interpreter] = {}
        for size in _sizes():
            interpreter = Interpreter(model_content=content, num_threads=threads or None)
            inputs = [(d["index"], _input_name(d["name"])) for d in interpreter.get_input_details()]
            if {name for _, name in inputs} != {"image", "landmarks"}:
                raise FailedPrecondition(
                    f"{path} takes inputs {sorted(name for _, name in inputs)},"
                    " not image and landmarks"
                )
            for detail in interpreter.get_input_details():
                shape = [size, *detail["shape_signature"][1:]]
                interpreter.resize_tensor_input(detail["index"], shape, strict=True)
            interpreter.allocate_tensors()
            output = interpreter.get_output_details()[0]["index"]
            self._by_size[size] = _Interpreter(interpreter, threading.Lock(), inputs, output)

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        n = len(inputs["image"])
        if n == 0:
            raise ValueError("no faces to embed")
        out, start = [], 0
        for size in _chunks(n):
            out.append(self._run({k: v[start : start + size] for k, v in inputs.items()}))
            start += size
        return np.concatenate(out)

    def _run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        runner = self._by_size[len(inputs["image"])]
        with runner.lock:
            for index, name in runner.inputs:
                runner.interpreter.set_tensor(index, inputs[name].astype(np.float32, copy=False))
            runner.interpreter.invoke()
            output = runner.interpreter.get_tensor(runner.output)
        result: np.ndarray = np.array(output, dtype=np.float32)
        return result


@dataclass(frozen=True)
class _Interpreter:
    """One interpreter of a fixed batch size, its input tensors' (index,
    name) and its output tensor's index, looked up once rather than per call."""

    interpreter: Any
    lock: threading.Lock
    inputs: list[tuple[int, str]]
    output: int


def _input_name(tensor_name: str) -> str:
    # Exported inputs are named "serving_default_<name>:0".
    return tensor_name.split(":")[0].removeprefix("serving_default_")
