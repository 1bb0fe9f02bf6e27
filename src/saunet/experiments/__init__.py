"""What serves the paper's experiments and the demo, apart from the core: the benchmark (Table 2), the
cross-validation report (Tables 1 and 4, figures), report figures and tables, synthetic phantoms, the demo."""
