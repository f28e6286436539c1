"""RAISE's reinforcement-learning core: stochastic per-cluster batch choice and PPO."""
