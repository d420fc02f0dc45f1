<?php
/**
 * The control plane's REST API (`/api/plugins/`) over the WordPress HTTP API.
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

/**
 * An answer that is not a 2xx, or no answer at all (`status` null: refused, timeout, DNS).
 */
class Molam_Form_Http_Error extends Exception {

	/**
	 * HTTP status, or null when the control plane could not be reached.
	 *
	 * @var int|null
	 */
	public $status;

	/**
	 * Decoded body of the answer.
	 *
	 * @var mixed
	 */
	public $body;

	/**
	 * Create the error.
	 *
	 * @param string   $message Readable message.
	 * @param int|null $status  HTTP status.
	 * @param mixed    $body    Decoded answer.
	 */
	public function __construct( $message, $status = null, $body = null ) {
		parent::__construct( $message );
		$this->status = $status;
		$this->body   = $body;
	}

	/**
	 * Whether sending again later may succeed (network error, 408, 425, 429, 5xx).
	 *
	 * @return bool
	 */
	public function retryable() {
		return null === $this->status || in_array( $this->status, array( 408, 425, 429 ), true ) || $this->status >= 500;
	}
}

/**
 * JSON over HTTPS with the merchant's bearer token; redirects are never followed, so the
 * token cannot travel to another origin.
 */
class Molam_Form_Http {

	/**
	 * Is this host a loopback address (127.0.0.0/8, ::1, localhost)?
	 *
	 * @param string $url URL.
	 * @return bool
	 */
	public static function is_loopback_url( $url ) {
		$host = strtolower( (string) wp_parse_url( $url, PHP_URL_HOST ) );
		$host = trim( $host, '[]' );
		return 'localhost' === $host || '::1' === $host || 1 === preg_match( '/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/', $host );
	}

	/**
	 * The transport rule shared with the agent: https, or http to a loopback host only.
	 *
	 * @param string $url URL.
	 * @return bool
	 */
	public static function allowed_url( $url ) {
		$scheme = strtolower( (string) wp_parse_url( $url, PHP_URL_SCHEME ) );
		if ( '' === (string) wp_parse_url( $url, PHP_URL_HOST ) ) {
			return false;
		}
		return 'https' === $scheme || ( 'http' === $scheme && self::is_loopback_url( $url ) );
	}

	/**
	 * Send one request to the control plane and decode the JSON answer.
	 *
	 * @param string      $method          HTTP method.
	 * @param string      $path            API path such as `rollback/pending`.
	 * @param array|null  $body            JSON body.
	 * @param array       $query           Query parameters (null values dropped).
	 * @param string|null $idempotency_key Idempotency-Key header.
	 * @return array Decoded answer.
	 * @throws Molam_Form_Http_Error On a network error or a non-2xx answer.
	 */
	public static function request( $method, $path, $body = null, $query = array(), $idempotency_key = null ) {
		$base  = (string) Molam_Form_Settings::get( 'api_url' );
		$token = (string) Molam_Form_Settings::get( 'token' );
		if ( '' === $base || '' === $token ) {
			throw new Molam_Form_Http_Error( 'the control plane URL or token is not configured', 0 );
		}
		if ( ! self::allowed_url( $base ) ) {
			throw new Molam_Form_Http_Error( 'the control plane URL must be https (http only for a loopback address)', 0 );
		}
		$url   = trailingslashit( $base ) . ltrim( $path, '/' );
		$query = array_filter( $query, fn( $v ) => null !== $v && '' !== $v );
		if ( $query ) {
			$url .= '?' . http_build_query( $query, '', '&', PHP_QUERY_RFC3986 );
		}
		$headers = array(
			'Authorization' => 'Bearer ' . $token,
			'Accept'        => 'application/json',
		);
		$args    = array(
			'method'      => $method,
			'timeout'     => (float) Molam_Form_Settings::get( 'timeout_s' ),
			'redirection' => 0,
			'user-agent'  => 'molam-form/' . MOLAM_FORM_VERSION,
		);
		if ( null !== $body ) {
			$headers['Content-Type'] = 'application/json';
			$args['body']            = wp_json_encode( $body );
		}
		if ( $idempotency_key ) {
			$headers['Idempotency-Key'] = $idempotency_key;
		}
		$args['headers'] = $headers;
		$response        = wp_remote_request( $url, $args );
		if ( is_wp_error( $response ) ) {
			throw new Molam_Form_Http_Error( "$method $path: control plane unreachable (" . $response->get_error_message() . ')' );
		}
		$status  = (int) wp_remote_retrieve_response_code( $response );
		$decoded = json_decode( (string) wp_remote_retrieve_body( $response ), true );
		if ( $status < 200 || $status >= 300 ) {
			$detail = is_array( $decoded ) && isset( $decoded['error'] ) ? ': ' . $decoded['error'] : '';
			throw new Molam_Form_Http_Error( "$method $path: HTTP $status$detail", $status, $decoded );
		}
		if ( ! is_array( $decoded ) ) {
			throw new Molam_Form_Http_Error( "$method $path: answer is not a JSON object", 502 );
		}
		return $decoded;
	}
}
