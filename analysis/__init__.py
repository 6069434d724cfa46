"""Reproducible evaluation of city civic scientific-literacy action plans.

The library behind the notebooks: every stage's logic lives here, the city is
data (data/raw/plan/<city>.yml) and never named in code.
"""

__version__ = "0.1.0"
