"""Training the zoo: data pipeline over the train split, load balancing, training loop, model cards.

``dodoco zoo train`` (``dodoco.commands.zoo``) drives ``dodoco.training.train.train_family``; the trained
models load as ``zoo:<family>`` through ``dodoco.models.zoo``.
"""
