package benchreport
func WriteChart(path string, s Set) error { return nil }
