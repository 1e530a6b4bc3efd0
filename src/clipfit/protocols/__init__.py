"""Evaluation protocols over a grid of methods and seeds: few-shot and base-to-new."""
