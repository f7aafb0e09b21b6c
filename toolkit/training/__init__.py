"""Training: the one loop (`loop.fit`) with its compute budgets, distillation, evaluation (HR/NDCG with
full ranking), the plan's quality priors (proxy students) and multi-process training."""
