"""Users: finance staff for the admin and API clients (storefront, finance) for the API."""
