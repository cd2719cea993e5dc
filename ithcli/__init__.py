"""ithcli: interrogate and program implanted intrathecal drug pumps."""
