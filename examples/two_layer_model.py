"""The lecture's two-layer network as a model file for the CLI (z1 -W1-> s2 -ReLU-> z2 -W2-> s3 -> C):

    symdiff graph examples/two_layer_model.py:C --backward -o two_layer.svg
    symdiff check examples/two_layer_model.py:C
"""
import symdiff as sd

z1 = sd.input("z1", (4, 5), "float64")  # the input state, a batch of 4
y = sd.input("y", (4,), "int64")  # desired classes
W1 = sd.param("W1", (5, 3), "float64")
W2 = sd.param("W2", (3, 2), "float64")
s2 = z1 @ W1  # weighted sums
z2 = sd.relu(s2)  # nonlinearity, component by component
s3 = z2 @ W2
C = sd.cross_entropy(s3, y)  # the cost
