"""DODOCO: an observatory for Mixture-of-Experts routing and the AlltoAll dispatch it causes.

Shape legend used in every docstring: S sequences, T tokens, L MoE layers, E routed experts,
K experts per token, N EP ranks, B sequences per rank per step, H hidden size.
"""

__version__ = "0.1.0"
