package s3

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/gbc-backup/gbc/cloud"
)

// sweepStale aborts the incomplete multipart uploads under prefix that
// opts.Stale picks. A Put aborts its own upload when it fails, but a killed
// process cannot, and S3 keeps (and bills) the parts of an upload until it
// is completed or aborted. Sizes come from ListParts, one request per
// stale upload: there are few, and the report is what tells the operator
// what they cost.
func (st *s3Store) sweepStale(ctx context.Context, prefix string, opts cloud.SweepOptions) (cloud.SweepResult, error) {
	res := cloud.SweepResult{What: "multipart uploads"}
	seen, err := st.sweepUploads(ctx, prefix, prefix, opts, &res)
	if err == nil && seen == 0 && prefix != "" {
		// MinIO takes the prefix of ListMultipartUploads for the exact
		// name of one object, and lists the uploads of the whole bucket
		// without one: look again without it, and filter here. Where
		// prefixes work (AWS, Ceph), this costs one request more, only
		// when there is nothing to sweep.
		_, err = st.sweepUploads(ctx, "", prefix, opts, &res)
	}
	return res, err
}

// sweepUploads lists uploads by listPrefix, page by page, and sweeps those
// whose key starts with prefix. It returns how many of those it saw.
func (st *s3Store) sweepUploads(ctx context.Context, listPrefix, prefix string, opts cloud.SweepOptions, res *cloud.SweepResult) (int, error) {
	in := &awss3.ListMultipartUploadsInput{Bucket: aws.String(st.bucket)}
	if listPrefix != "" {
		in.Prefix = aws.String(listPrefix)
	}
	seen := 0
	pages := awss3.NewListMultipartUploadsPaginator(st.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if noSuchUpload(err) {
			// Some S3-compatible stores (gofakes3) answer so for a
			// bucket that never had an upload.
			return seen, nil
		}
		if err != nil {
			return seen, cloud.NewError("list uploads", st.base+"/"+prefix, err)
		}
		for _, u := range page.Uploads {
			key, id := aws.ToString(u.Key), aws.ToString(u.UploadId)
			if !strings.HasPrefix(key, prefix) || id == "" {
				continue
			}
			seen++
			// An upload of unknown age may be running: left alone.
			if u.Initiated == nil || !opts.Stale(key, *u.Initiated) {
				continue
			}
			size, err := st.uploadSize(ctx, key, id)
			if err == nil && !opts.DryRun {
				_, err = st.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
					Bucket: aws.String(st.bucket), Key: aws.String(key), UploadId: aws.String(id),
				})
			}
			if noSuchUpload(err) {
				continue // completed or aborted meanwhile
			}
			if err != nil {
				return seen, cloud.NewError("abort upload", st.base+"/"+key, err)
			}
			res.Count++
			res.Bytes += size
		}
	}
	return seen, nil
}

// uploadSize sums the sizes of the parts an upload holds.
func (st *s3Store) uploadSize(ctx context.Context, key, id string) (int64, error) {
	var size int64
	pages := awss3.NewListPartsPaginator(st.client, &awss3.ListPartsInput{
		Bucket: aws.String(st.bucket), Key: aws.String(key), UploadId: aws.String(id),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return size, err
		}
		for _, p := range page.Parts {
			size += aws.ToInt64(p.Size)
		}
	}
	return size, nil
}

func noSuchUpload(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchUpload"
}
