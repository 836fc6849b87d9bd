"""Infrastructure for one run over several processes (torchrun): the floor of the engine.

``distributed``: the world (rank, device), collectives, global BatchNorm, sharded draws and the
"rank 0 decides" helpers. Nothing here knows about methods, stages or run folders.
"""
