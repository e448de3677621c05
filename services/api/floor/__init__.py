"""The AGV floor map: live positions, trails, zones, floor plans and a 5G coverage heatmap."""
