"""RL fine-tuning (DMPO stage 2, SPEC §4): PPO over the stochastic MeanFlow sampling chain, BC to the frozen
pre-trained policy. `chain` (the stochastic policy and its log-probability), `critic`, `ppo` (GAE, losses,
reward scaling), `envs` (robosuite behind gymnasium vector environments), `loop` (`dm1 finetune`)."""
