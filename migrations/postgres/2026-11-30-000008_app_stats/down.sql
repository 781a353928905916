DROP TABLE app_stats;
