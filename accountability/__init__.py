"""Accountability duties made measurable: lift deadlines (``lifts``), subject access
(``subject``), public statistics (``stats``), the measure policy as data (``policy``) and
reviews before expiry (``review``). docs/accountability.md explains each duty."""
