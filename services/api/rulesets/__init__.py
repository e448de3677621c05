"""Rule documents through the API: submitted, validated by the rules service, versioned."""
