// Package domain holds the stats service's rules: what a valid sample batch
// and a valid query are, how samples fall into periods, and how statistics
// and exact percentiles are computed. It does no I/O; both stores and the
// query handlers build on it so that they give the same answers.
package domain

import (
	"errors"
	"fmt"
)

// ErrInvalidQuery is wrapped by every query validation error.
var ErrInvalidQuery = errors.New("invalid query")

// ErrUnknownMetric is returned for a metric name not in events.Metrics.
var ErrUnknownMetric = fmt.Errorf("%w: unknown metric", ErrInvalidQuery)

// ErrInvalidDimension is returned for a dimension name that cannot be
// queried, a repeated name, or an empty or malformed value.
var ErrInvalidDimension = fmt.Errorf("%w: invalid dimension", ErrInvalidQuery)

// ErrInvalidPeriod is returned for a period that is not a positive multiple
// of the sample interval.
var ErrInvalidPeriod = fmt.Errorf("%w: invalid period", ErrInvalidQuery)

// ErrInvalidTimeRange is returned when the end is not after the start or a
// time is missing.
var ErrInvalidTimeRange = fmt.Errorf("%w: invalid time range", ErrInvalidQuery)

// ErrRangeTooLarge is returned when a query would cover more than
// MaxDatapoints periods or more than MaxQueryRange.
var ErrRangeTooLarge = fmt.Errorf("%w: range too large", ErrInvalidQuery)

// ErrInvalidStatistic is returned for an unknown statistic or percentile.
var ErrInvalidStatistic = fmt.Errorf("%w: invalid statistic", ErrInvalidQuery)

// ErrInvalidBatch is wrapped by sample batch validation errors. Such a batch
// can never be stored; the consumer parks it.
var ErrInvalidBatch = errors.New("invalid sample batch")
