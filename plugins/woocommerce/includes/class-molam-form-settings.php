<?php
/**
 * Configuration of the Molam Form upgrader: one option row, validated on save.
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

/**
 * Reads and validates the `molam_form_settings` option.
 *
 * The keys mirror the agent's TOML (`docs/agent.md`): control plane URL, merchant id, token,
 * public key, smoke-test URL, the plugin the rollouts speak of and the directory, tables and
 * option rows that make up an installation of it.
 */
class Molam_Form_Settings {

	const OPTION = 'molam_form_settings';

	/**
	 * Default values; the managed plugin is this plugin's own directory unless configured.
	 *
	 * @return array<string, mixed>
	 */
	public static function defaults() {
		global $wpdb;
		return array(
			'api_url'           => '',
			'merchant_id'       => '',
			'token'             => '',
			'public_key'        => '',
			'allow_unsigned'    => false,
			'smoke_url'         => '',
			'plugin_name'       => 'woocommerce',
			'plugin_slug'       => basename( dirname( MOLAM_FORM_FILE ) ),
			'plugin_file'       => '',
			'tables'            => $wpdb->prefix . 'molam_orders',
			'option_prefix'     => 'molam_gateway_',
			'gateway_class'     => 'Molam_Payment_Gateway',
			'country'           => '',
			'tier'              => '',
			'maintenance_ttl_s' => 120,
			'forced_rollback_max_age_s' => 86400,
			'timeout_s'         => 10,
			'max_download_mb'   => 64,
			'max_unpacked_mb'   => 256,
		);
	}

	/**
	 * The effective settings (stored values over defaults).
	 *
	 * @return array<string, mixed>
	 */
	public static function all() {
		$stored = get_option( self::OPTION, array() );
		return array_merge( self::defaults(), is_array( $stored ) ? $stored : array() );
	}

	/**
	 * One setting.
	 *
	 * @param string $key Setting name.
	 * @return mixed
	 */
	public static function get( $key ) {
		$all = self::all();
		return $all[ $key ] ?? null;
	}

	/**
	 * Absolute directory of the managed plugin.
	 *
	 * @return string
	 */
	public static function plugin_dir() {
		return trailingslashit( WP_PLUGIN_DIR ) . self::get( 'plugin_slug' );
	}

	/**
	 * File whose WordPress header carries the managed plugin's version.
	 *
	 * @return string
	 */
	public static function plugin_file() {
		$file = (string) self::get( 'plugin_file' );
		return '' !== $file ? $file : self::get( 'plugin_slug' ) . '.php';
	}

	/**
	 * The agent's directory beside the plugin (same file system: renames are atomic). WordPress
	 * ignores entries of wp-content/plugins whose name starts with a dot.
	 *
	 * @return string
	 */
	public static function work_dir() {
		return trailingslashit( WP_PLUGIN_DIR ) . '.molam-agent/' . self::get( 'plugin_slug' );
	}

	/**
	 * The plugin's tables (the migration policy's "own set").
	 *
	 * @return string[]
	 */
	public static function tables() {
		$raw = (string) self::get( 'tables' );
		return array_values( array_filter( array_map( 'trim', explode( ',', $raw ) ) ) );
	}

	/**
	 * The plugin's tables that exist now: exact names, and every match of a `prefix*` entry.
	 *
	 * @return string[]
	 */
	public static function present_tables() {
		global $wpdb;
		$present = (array) $wpdb->get_col( 'SHOW TABLES' );
		sort( $present );
		$out = array();
		foreach ( self::tables() as $pattern ) {
			foreach ( $present as $t ) {
				$match = '*' === substr( $pattern, -1 ) ? 0 === strpos( $t, substr( $pattern, 0, -1 ) ) : $t === $pattern;
				if ( $match && ! in_array( $t, $out, true ) ) {
					$out[] = $t;
				}
			}
		}
		return $out;
	}

	/**
	 * Validate a submitted settings form. Invalid values are refused with a settings error and
	 * the stored value stays; an empty token field keeps the stored token (it is never echoed).
	 *
	 * @param mixed $input Submitted values.
	 * @return array<string, mixed>
	 */
	public static function sanitize( $input ) {
		$old   = self::all();
		$input = is_array( $input ) ? wp_unslash( $input ) : array();
		$out   = $old;
		$url   = trim( (string) ( $input['api_url'] ?? '' ) );
		if ( '' === $url || Molam_Form_Http::allowed_url( $url ) ) {
			$out['api_url'] = '' === $url ? '' : trailingslashit( $url );
		} else {
			add_settings_error( self::OPTION, 'api_url', __( 'The control plane URL must be https (http only for a loopback address).', 'molam-form' ) );
		}
		$merchant = strtolower( trim( (string) ( $input['merchant_id'] ?? '' ) ) );
		if ( '' === $merchant || wp_is_uuid( $merchant ) ) {
			$out['merchant_id'] = $merchant;
		} else {
			add_settings_error( self::OPTION, 'merchant_id', __( 'The merchant id must be a UUID.', 'molam-form' ) );
		}
		$token = trim( (string) ( $input['token'] ?? '' ) );
		if ( '' !== $token ) {
			$out['token'] = $token;
		}
		if ( ! empty( $input['forget_token'] ) ) {
			$out['token'] = '';
		}
		$key = trim( (string) ( $input['public_key'] ?? '' ) );
		if ( '' === $key || null !== Molam_Form_Release::parse_public_key( $key ) ) {
			$out['public_key'] = $key;
		} else {
			add_settings_error( self::OPTION, 'public_key', __( 'The public key must be base64 of 32 bytes or an Ed25519 PEM block.', 'molam-form' ) );
		}
		$smoke = trim( (string) ( $input['smoke_url'] ?? '' ) );
		if ( '' === $smoke || wp_http_validate_url( $smoke ) || Molam_Form_Http::is_loopback_url( $smoke ) ) {
			$out['smoke_url'] = esc_url_raw( $smoke );
		} else {
			add_settings_error( self::OPTION, 'smoke_url', __( 'The smoke-test URL is not a valid URL.', 'molam-form' ) );
		}
		$plugin = trim( (string) ( $input['plugin_name'] ?? $old['plugin_name'] ) );
		if ( preg_match( '/^[a-z0-9][a-z0-9_-]{0,63}$/', $plugin ) ) {
			$out['plugin_name'] = $plugin;
		} else {
			add_settings_error( self::OPTION, 'plugin_name', __( 'The plugin name must match ^[a-z0-9][a-z0-9_-]{0,63}$.', 'molam-form' ) );
		}
		$slug = trim( (string) ( $input['plugin_slug'] ?? $old['plugin_slug'] ) );
		if ( preg_match( '/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/', $slug ) ) {
			$out['plugin_slug'] = $slug;
		} else {
			add_settings_error( self::OPTION, 'plugin_slug', __( 'The plugin folder must be a plain folder name of wp-content/plugins.', 'molam-form' ) );
		}
		$tables = array_filter( array_map( 'trim', explode( ',', (string) ( $input['tables'] ?? $old['tables'] ) ) ) );
		if ( array() === array_filter( $tables, fn( $t ) => ! preg_match( '/^[A-Za-z0-9_$]{1,60}\*?$/', $t ) ) ) {
			$out['tables'] = implode( ',', $tables );
		} else {
			add_settings_error( self::OPTION, 'tables', __( 'Table names are plain identifiers (a trailing * matches a prefix), comma-separated.', 'molam-form' ) );
		}
		foreach ( array( 'country', 'tier' ) as $field ) {
			if ( isset( $input[ $field ] ) ) {
				$out[ $field ] = sanitize_text_field( $input[ $field ] );
			}
		}
		return $out;
	}
}
