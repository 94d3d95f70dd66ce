package httpsource

import "github.com/configsync/configsync/source"

// Auth types, the values of the authType parameter (and the IDs of Type's
// auth methods).
const (
	// AuthNone sends no credentials.
	AuthNone = "none"
	// AuthBearer sends the credential token as "Authorization: Bearer <token>".
	AuthBearer = "bearer"
	// AuthBasic sends the credentials username and password as HTTP Basic auth.
	AuthBasic = "basic"
	// AuthAPIKey sends the credential apiKey in the header apiKeyHeader or the
	// query parameter apiKeyQuery.
	AuthAPIKey = "apiKey"
	// AuthOAuth2ClientCredentials gets a token from tokenUrl with the
	// credentials clientId and clientSecret (RFC 6749, section 4.4), caches it
	// and gets a new one before it expires.
	AuthOAuth2ClientCredentials = "oauth2ClientCredentials"
	// AuthCustom sends the token request the customAuth parameter describes and
	// places fields of its response, picked by jq, into later requests.
	AuthCustom = "custom"
)

// authTypes lists the authType values, in the order of the metadata.
var authTypes = []string{AuthNone, AuthBearer, AuthBasic, AuthAPIKey, AuthOAuth2ClientCredentials, AuthCustom}

// Pagination types, the values of a pagination's type field.
var paginationTypes = []string{"none", "offset", "page", "cursor", "nextLink", "linkHeader"}

// Parameter and credential names: the public contract.
const (
	paramBaseURL        = "baseUrl"
	paramHeaders        = "headers"
	paramTimeout        = "timeout"
	paramVerifyTLS      = "verifyTls"
	paramMaxConcurrent  = "maxConcurrentRequests"
	paramRateLimit      = "rateLimit"
	paramPagination     = "pagination"
	paramAuthType       = "authType"
	paramAPIKeyHeader   = "apiKeyHeader"
	paramAPIKeyQuery    = "apiKeyQuery"
	paramTokenURL       = "tokenUrl"
	paramScopes         = "scopes"
	paramTokenAuthStyle = "tokenAuthStyle"
	paramCustomAuth     = "customAuth"
	paramTestPath       = "testPath"

	credToken        = "token"
	credUsername     = "username"
	credPassword     = "password"
	credAPIKey       = "apiKey"
	credClientID     = "clientId"
	credClientSecret = "clientSecret"
)

// Parameter definitions shared by Type's parameters and its auth methods'.
var (
	defAPIKeyHeader = source.Parameter{
		Name: paramAPIKeyHeader, Type: source.TypeString, DisplayName: "API key header",
		Description: "For authType apiKey: the request header that carries the key (for example X-API-Key). " +
			"Give this or apiKeyQuery, not both.",
	}
	defAPIKeyQuery = source.Parameter{
		Name: paramAPIKeyQuery, Type: source.TypeString, DisplayName: "API key query parameter",
		Description: "For authType apiKey: the query parameter that carries the key (for example api_key). " +
			"Give this or apiKeyHeader, not both. The value is removed from URLs in errors.",
	}
	defTokenURL = source.Parameter{
		Name: paramTokenURL, Type: source.TypeString, DisplayName: "Token URL",
		Description: "For authType oauth2ClientCredentials: the token endpoint, absolute or relative to baseUrl.",
	}
	defScopes = source.Parameter{
		Name: paramScopes, Type: source.TypeArray, DisplayName: "Scopes",
		Description: "For authType oauth2ClientCredentials: the scopes asked for (sent space-separated).",
	}
	defTokenAuthStyle = source.Parameter{
		Name: paramTokenAuthStyle, Type: source.TypeString, DisplayName: "Client authentication",
		Description: "For authType oauth2ClientCredentials: how clientId and clientSecret reach the token endpoint: " +
			"header (HTTP Basic, as RFC 6749 recommends) or body (form fields client_id and client_secret).",
		Default: "header", Options: []string{"header", "body"},
	}
	defCustomAuth = source.Parameter{
		Name: paramCustomAuth, Type: source.TypeObject, DisplayName: "Custom authentication",
		Description: "For authType custom: {request: {path or url, method (POST), headers, query, body, form}, " +
			"headers, query, body, expiresIn}. The request is sent first; its strings may hold {{credentials.NAME}}, " +
			"replaced by the credential NAME. headers, query and body map names to jq run on the token response " +
			"(for example Authorization: '\"Bearer \" + .access_token'); their values go into every later request " +
			"(body: into JSON bodies of POST, PUT and PATCH). expiresIn is jq yielding the token's lifetime in seconds. " +
			"The token is fetched again before it expires and once after a 401, one refresh at a time.",
	}
)

// parameters returns the integration parameters of the http type.
func parameters() []source.Parameter {
	return []source.Parameter{
		{
			Name: paramBaseURL, Type: source.TypeString, DisplayName: "Base URL", Required: true,
			Description: "The API's root, http or https (for example https://api.example.com/v2). " +
				"Resource paths are joined under its path; its query parameters go with every request. " +
				"It must not hold credentials: use authType.",
		},
		{
			Name: paramHeaders, Type: source.TypeObject, DisplayName: "Headers",
			Description: "Headers sent with every request, as an object of strings. Not secret: put credentials in authType's credentials.",
		},
		{
			Name: paramTimeout, Type: source.TypeNumber, DisplayName: "Timeout (seconds)",
			Description: "Time limit of one request attempt, body included, in seconds.",
			Default:     DefaultTimeout, FloatRange: &[2]float64{0.1, 3600},
		},
		{
			Name: paramVerifyTLS, Type: source.TypeBoolean, DisplayName: "Verify TLS",
			Description: "Check the server's TLS certificate. Turn off only for a self-signed test server.",
			Default:     true,
		},
		{
			Name: paramMaxConcurrent, Type: source.TypeInteger, DisplayName: "Max concurrent requests",
			Description: "The most requests in flight at once for this integration, across its kinds.",
			Default:     int64(DefaultMaxConcurrentRequests), IntegerRange: &[2]int64{1, 64},
		},
		{
			Name: paramRateLimit, Type: source.TypeNumber, DisplayName: "Rate limit (requests per second)",
			Description: "The most requests per second for this integration, retries and token requests included; 0 for no limit.",
			Default:     0.0, FloatRange: &[2]float64{0, 100000},
		},
		{
			Name: paramPagination, Type: source.TypeObject, DisplayName: "Default pagination",
			Description: "The pagination of resources that give none: {type: none|offset|page|cursor|nextLink|linkHeader, ...} " +
				"(see a resource's selector.pagination). Default: none.",
		},
		{
			Name: paramAuthType, Type: source.TypeString, DisplayName: "Authentication",
			Description: "How requests authenticate; each type takes its own credentials (see the auth methods).",
			Default:     AuthNone, Options: authTypes,
		},
		defAPIKeyHeader,
		defAPIKeyQuery,
		defTokenURL,
		defScopes,
		defTokenAuthStyle,
		defCustomAuth,
		{
			Name: paramTestPath, Type: source.TypeString, DisplayName: "Connection test path",
			Description: "The path (under baseUrl) of the authenticated GET the connection test sends. " +
				"Default: the first resource's path, or baseUrl itself.",
		},
	}
}

// authMethods returns the auth methods of the http type: each one's
// credentials (secret) and the parameters it reads (not secret).
func authMethods() []source.AuthMethod {
	secret := func(name, display, desc string) source.Parameter {
		return source.Parameter{Name: name, Type: source.TypeString, DisplayName: display, Description: desc, Required: true, Secret: true}
	}
	tokenURL := defTokenURL
	tokenURL.Required = true
	return []source.AuthMethod{
		{ID: AuthNone, DisplayName: "None", ConfigTestSupported: true},
		{
			ID: AuthBearer, DisplayName: "Bearer token", ConfigTestSupported: true,
			Parameters: []source.Parameter{secret(credToken, "Token", "Sent as Authorization: Bearer <token>.")},
		},
		{
			ID: AuthBasic, DisplayName: "Username and password", ConfigTestSupported: true,
			Parameters: []source.Parameter{
				secret(credUsername, "Username", "The HTTP Basic user name."),
				secret(credPassword, "Password", "The HTTP Basic password."),
			},
		},
		{
			ID: AuthAPIKey, DisplayName: "API key", ConfigTestSupported: true,
			Parameters: []source.Parameter{
				secret(credAPIKey, "API key", "Sent in the header apiKeyHeader or the query parameter apiKeyQuery."),
				defAPIKeyHeader, defAPIKeyQuery,
			},
		},
		{
			ID: AuthOAuth2ClientCredentials, DisplayName: "OAuth 2.0 client credentials", ConfigTestSupported: true,
			Parameters: []source.Parameter{
				secret(credClientID, "Client ID", "The OAuth client's id."),
				secret(credClientSecret, "Client secret", "The OAuth client's secret."),
				tokenURL, defScopes, defTokenAuthStyle,
			},
		},
		{
			// No connection test: the token request is the user's own and may not
			// be safe to send on demand (one-time codes, sessions that pile up,
			// lockouts after failed logins); the first sync run tests it.
			ID: AuthCustom, DisplayName: "Custom token request", ConfigTestSupported: false,
			Parameters: []source.Parameter{
				func() source.Parameter { p := defCustomAuth; p.Required = true; return p }(),
			},
		},
	}
}
