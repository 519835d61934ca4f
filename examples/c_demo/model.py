"""The C demo's model: a tiny MLP 2-16-16-1 with tanh and a mean-squared-error loss, float64, batch 1.

Compile it for C (see README.md in this folder)::

    symdiff compile examples/c_demo/model.py --name tiny -o build/c_demo

The file is ordinary Python executed by the ``symdiff`` command; ``loss`` is the tensor it compiles
(with its gradients w.r.t. every ``sd.param``).
"""
import symdiff as sd

B = 1  # batch size
x = sd.input("x", (B, 2), dtype="float64")
y = sd.input("y", (B, 1), dtype="float64")
W1 = sd.param("W1", (2, 16), dtype="float64")
b1 = sd.param("b1", (16,), dtype="float64")
W2 = sd.param("W2", (16, 16), dtype="float64")
b2 = sd.param("b2", (16,), dtype="float64")
W3 = sd.param("W3", (16, 1), dtype="float64")
b3 = sd.param("b3", (1,), dtype="float64")

h1 = sd.tanh(x @ W1 + b1)
h2 = sd.tanh(h1 @ W2 + b2)
pred = h2 @ W3 + b3
loss = sd.mse(pred, y)
