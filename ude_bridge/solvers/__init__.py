"""The native torch ODE engine: tableaus, steps, step-size control, dense output, the loop.

Solvers know nothing of training, models or Julia.
"""
