// Package azure is the azblob:// provider of package cloud: Azure Blob
// Storage (and Azurite) through the Azure SDK and gocloud's azureblob,
// with credentials from the environment and encryption scopes. Importing it
// (blank, if nothing else is used) registers it with cloud.Open; see
// cloud.Provider for why it is apart.
package azure
