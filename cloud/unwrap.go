package cloud

// As finds the first Store in the chain from s down (s itself, then each
// Store that an Unwrap method returns) that is a T, usually an optional
// capability such as StaleSweeper, as errors.As does for errors. Wrappers
// that change keys implement the capabilities they must translate
// (WithPrefix's SweepStale), so the first one found is the one to use.
func As[T any](s Store) (T, bool) {
	for cur := s; cur != nil; {
		if t, ok := cur.(T); ok {
			return t, true
		}
		u, ok := cur.(interface{ Unwrap() Store })
		if !ok {
			break
		}
		cur = u.Unwrap()
	}
	var zero T
	return zero, false
}
