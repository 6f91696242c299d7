"""The one-command demo: phantom -> plan/preprocess -> train three trainers -> predict -> benchmark report."""
