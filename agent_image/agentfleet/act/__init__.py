"""Act: start the Step Functions action (execution name = decision id) and keep the write-ahead audit."""
