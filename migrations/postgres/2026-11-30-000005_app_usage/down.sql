DROP TABLE app_usage;
