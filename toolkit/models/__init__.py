"""The models: the SASRec-style sequence recommender (teacher and student alike) and its item tables."""
