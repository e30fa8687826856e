"""iommufd-fuzz: a coverage-guided, differential fuzzer for the Linux iommufd uAPI."""

__version__ = "0.1.0"
