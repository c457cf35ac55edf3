"""One router per resource; each route is a thin adapter over the admin layer or Client."""
